//! The chain of migrations each operation is made of, as SQL: expand steps the binary still
//! serving tolerates, a backfill by key range where rows must be filled, and the contract steps
//! (post-deploy) that wait for the rollout to end.

use super::catalog::{Column, Table, substitute};
use super::{GenerateError, ident};

/// One migration folder of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The folder's name after its timestamp.
    pub name: String,
    pub up: String,
    pub down: String,
    pub post_deploy: bool,
    pub run_in_transaction: bool,
    /// A backfill: the query of the key range it walks.
    pub key_range: Option<String>,
}

/// A chain, and what the service's code must do as it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub steps: Vec<Step>,
    /// For the person who asked: the order of releases, and what each binary must read and write.
    pub advice: Vec<String>,
}

fn step(name: String, up: String, down: String) -> Step {
    Step {
        name,
        up,
        down,
        post_deploy: false,
        run_in_transaction: true,
        key_range: None,
    }
}

impl Step {
    fn post_deploy(self) -> Step {
        Step {
            post_deploy: true,
            ..self
        }
    }

    fn outside_transaction(self) -> Step {
        Step {
            run_in_transaction: false,
            ..self
        }
    }
}

/// A backfill by key range of `table`: `set` for the rows `pending` matches, at most `size` keys
/// a batch. The diesel CLI sets neither bound, and runs the first batch (the keys below `size`).
fn backfill(
    name: String,
    table: &Table,
    key: &str,
    set: &str,
    pending: &str,
    size: u64,
    what: &str,
) -> Step {
    let t = &table.name;
    let up = format!(
        "-- {what}\n\
         -- A batched migration (metadata.toml): the service runs it once per slice of {size} keys,\n\
         -- each in a transaction of its own, from the lowest {key} to the highest one when it starts;\n\
         -- rows written after that are the trigger's. The diesel CLI sets no slice and runs the\n\
         -- first one, the {key}s below {size}; `migrate run` finishes the rest.\n\
         UPDATE {t} SET {set}\n\
         WHERE {key} >= coalesce(nullif(current_setting('fleet_migrations.batch_start', true), '')::bigint, 0)\n  \
         AND {key} < coalesce(nullif(current_setting('fleet_migrations.batch_end', true), '')::bigint, {size})\n  \
         AND {pending};\n"
    );
    let down =
        "-- Nothing to undo: the rows keep their values, and reverting the step before this one\n\
                -- drops the column they were written to.\nSELECT 1;\n"
            .to_owned();
    Step {
        key_range: Some(format!("SELECT min({key}), max({key}) FROM {t}")),
        run_in_transaction: false,
        ..step(name, up, down)
    }
}

fn needs_key<'a>(table: &'a Table, operation: &str) -> Result<&'a str, GenerateError> {
    table.key.as_deref().ok_or_else(|| GenerateError::NoKey {
        table: table.name.clone(),
        operation: operation.to_owned(),
    })
}

fn default_clause(default: &Option<String>) -> String {
    default
        .as_ref()
        .map_or(String::new(), |default| format!(" DEFAULT {default}"))
}

/// `add-column`: nullable, with a default, or NOT NULL with a backfill expression.
pub fn add_column(
    table: &Table,
    column: &str,
    sql_type: &str,
    default: &Option<String>,
    not_null: bool,
    backfill_expr: &Option<String>,
    size: u64,
) -> Result<Chain, GenerateError> {
    let (t, c) = (&table.name, ident(column)?);
    let Some(expr) = backfill_expr
        .as_ref()
        .filter(|_| not_null && default.is_none())
    else {
        if not_null && default.is_none() {
            return Err(GenerateError::Usage(
                "a NOT NULL column needs --default, or --backfill EXPR to fill the rows already there".into(),
            ));
        }
        let null = if not_null { " NOT NULL" } else { "" };
        let up = format!(
            "-- Expand: a new column{}. A binary that does not know it keeps working: its inserts\n\
             -- leave it {}.\n\
             ALTER TABLE {t} ADD COLUMN {c} {sql_type}{null}{};\n",
            if not_null { " with a default" } else { "" },
            if default.is_some() {
                "to its default"
            } else {
                "NULL"
            },
            default_clause(default),
        );
        let down = format!("ALTER TABLE {t} DROP COLUMN {c};\n");
        return Ok(Chain {
            steps: vec![step(format!("add_{t}_{c}"), up, down)],
            advice: vec![format!(
                "Release the binary that reads {t}.{c} after `migrate run`: the column exists before it \
                 serves, and the previous binary ignores it."
            )],
        });
    };
    let key = needs_key(table, "add-column --backfill")?;
    let fill = ident(&format!("{t}_{c}_fill"))?;
    let check = ident(&format!("{t}_{c}_not_null"))?;
    let trigger = Trigger {
        name: fill.clone(),
        create: format!(
            "CREATE FUNCTION {fill}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             BEGIN\n    \
             IF NEW.{c} IS NULL THEN\n        \
             SELECT {expr} INTO NEW.{c} FROM (SELECT NEW.*) AS {t};\n    \
             END IF;\n    \
             RETURN NEW;\n\
             END\n\
             $$;\n\
             CREATE TRIGGER {fill} BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {fill}();\n"
        ),
    };
    let expand = format!(
        "-- Expand, step 1 of 5: {c}, nullable for now, and a trigger that fills it for rows written by\n\
         -- a binary that does not know it yet. Nothing else changes for that binary.\n\
         ALTER TABLE {t} ADD COLUMN {c} {sql_type};\n\n{}",
        trigger.create
    );
    let expand_down = format!("{}ALTER TABLE {t} DROP COLUMN {c};\n", trigger.drop(t));
    let fill_rows = backfill(
        format!("backfill_{t}_{c}"),
        table,
        key,
        &format!("{c} = {expr}"),
        &format!("{c} IS NULL"),
        size,
        &format!("Expand, step 2 of 5: {c} for the rows there before the trigger."),
    );
    let [add, validate] = not_null_check(t, &c, &check, 3, 5);
    let set = set_not_null_step(t, &c, &check, 5, 5, Some(&trigger));
    Ok(Chain {
        steps: vec![
            step(format!("add_{t}_{c}"), expand, expand_down),
            fill_rows,
            add,
            validate,
            set,
        ],
        advice: vec![
            format!(
                "Before the rollout, `migrate run --skip-post-deploy` adds {c} and fills it; the \
                 previous binary's inserts get it from the trigger."
            ),
            format!(
                "The binary you release reads {c} as NOT NULL (`diesel print-schema` after all five \
                 steps writes `{c} -> ...` without Nullable) and writes it on insert; its /ready \
                 waits for the backfill."
            ),
            "After the rollout, `migrate run` applies the three post-deploy steps: the check, its \
             validation, and NOT NULL with the trigger gone."
                .to_owned(),
        ],
    })
}

/// A trigger function and its trigger, of the same name.
struct Trigger {
    name: String,
    /// `CREATE FUNCTION ...; CREATE TRIGGER ...;`
    create: String,
}

impl Trigger {
    fn drop(&self, t: &str) -> String {
        format!(
            "DROP TRIGGER {0} ON {t};\n-- squawk-ignore ban-drop-function\nDROP FUNCTION {0}();\n",
            self.name
        )
    }
}

/// Two post-deploy steps: no new row without `c` (a CHECK NOT VALID, recorded under a brief
/// lock), then the rows already there checked under a lock that lets traffic through.
fn not_null_check(t: &str, c: &str, check: &str, first: usize, of: usize) -> [Step; 2] {
    let second = first + 1;
    let add = step(
        format!("{t}_{c}_not_null_check"),
        format!(
            "-- Contract, step {first} of {of} (post-deploy): no row without {c} from now on. NOT VALID\n\
             -- checks new and updated rows only, and holds its lock just long enough to record the\n\
             -- constraint; the next step checks the rows already there.\n\
             ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;\n"
        ),
        format!("ALTER TABLE {t} DROP CONSTRAINT {check};\n"),
    )
    .post_deploy();
    let validate = step(
        format!("validate_{t}_{c}_not_null_check"),
        format!(
            "-- Contract, step {second} of {of} (post-deploy): the rows already there, checked under a\n\
             -- lock that lets reads and writes through.\n\
             ALTER TABLE {t} VALIDATE CONSTRAINT {check};\n"
        ),
        "-- Nothing to undo: the constraint stays, proven.\nSELECT 1;\n".to_owned(),
    )
    .post_deploy();
    [add, validate]
}

/// The post-deploy step that makes `c` NOT NULL once the validated `check` proves it, so the
/// lock is brief; the check goes, and so does `trigger` when there is one.
fn set_not_null_step(
    t: &str,
    c: &str,
    check: &str,
    n: usize,
    of: usize,
    trigger: Option<&Trigger>,
) -> Step {
    let (drop_trigger, create_trigger) = match trigger {
        Some(trigger) => (trigger.drop(t), trigger.create.clone()),
        None => (String::new(), String::new()),
    };
    step(
        format!("{t}_{c}_not_null"),
        format!(
            "-- Contract, step {n} of {of} (post-deploy): the column itself NOT NULL. The validated CHECK\n\
             -- proves it, so PostgreSQL skips the scan and the lock is brief; the CHECK then goes.\n\
             -- contract: every binary that may still serve writes {c}\n\
             -- squawk-ignore adding-not-nullable-field\n\
             ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;\n\
             -- squawk-ignore ban-drop-constraint\n\
             ALTER TABLE {t} DROP CONSTRAINT {check};\n{drop_trigger}"
        ),
        format!(
            "-- What the step before left: the column nullable, the validated CHECK in its place (its\n\
             -- scan runs over a column that was NOT NULL until now, so it refuses nothing).\n\
             -- squawk-ignore constraint-missing-not-valid\n\
             ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL);\n\
             -- squawk-ignore ban-drop-not-null\n\
             ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;\n{create_trigger}"
        ),
    )
    .post_deploy()
}

/// The columns of an index as written, and its name: `name`, or `<table>_<columns>_<suffix>`.
fn index_of(
    table: &Table,
    columns: &[String],
    name: &Option<String>,
    suffix: &str,
) -> Result<(String, String), GenerateError> {
    let columns = (columns.iter())
        .map(|c| ident(c))
        .collect::<Result<Vec<_>, _>>()?;
    let name = match name {
        Some(name) => ident(name)?,
        None => ident(&format!("{}_{}_{suffix}", table.name, columns.join("_")))?,
    };
    Ok((name, columns.join(", ")))
}

/// `add-index`: built concurrently, outside a transaction, before the binary that needs it.
pub fn add_index(
    table: &Table,
    columns: &[String],
    name: &Option<String>,
) -> Result<Chain, GenerateError> {
    let t = &table.name;
    let (name, list) = index_of(table, columns, name, "idx")?;
    let up = format!(
        "-- Expand: an index, built while reads and writes go on. CREATE INDEX CONCURRENTLY cannot run\n\
         -- in a transaction (metadata.toml), so this is its only statement. A build that fails leaves\n\
         -- an INVALID index, which the next `migrate run` drops and builds again (IF NOT EXISTS\n\
         -- would take that index for the one asked for).\n\
         -- squawk-ignore prefer-robust-stmts\n\
         CREATE INDEX CONCURRENTLY {name} ON {t} ({list});\n"
    );
    let down = format!("DROP INDEX CONCURRENTLY IF EXISTS {name};\n");
    Ok(Chain {
        steps: vec![step(format!("index_{name}"), up, down).outside_transaction()],
        advice: vec![format!(
            "`migrate run` builds {name} before the binary that relies on it serves."
        )],
    })
}

/// `add-unique`: a unique index, built concurrently after the rollout (it refuses what the
/// previous binary may still write). It is what a UNIQUE constraint is made of, and
/// `ON CONFLICT` uses it the same way.
pub fn add_unique(
    table: &Table,
    columns: &[String],
    name: &Option<String>,
) -> Result<Chain, GenerateError> {
    let t = &table.name;
    let (name, list) = index_of(table, columns, name, "key")?;
    let up = format!(
        "-- Contract (post-deploy): {list} unique from now on, once no binary that may write a duplicate\n\
         -- serves. Built concurrently, outside a transaction (metadata.toml): a duplicate already there\n\
         -- fails the build, which leaves an INVALID index that the next `migrate run` drops and builds\n\
         -- again once the duplicate is gone.\n\
         -- squawk-ignore prefer-robust-stmts\n\
         CREATE UNIQUE INDEX CONCURRENTLY {name} ON {t} ({list});\n"
    );
    let down = format!("DROP INDEX CONCURRENTLY IF EXISTS {name};\n");
    Ok(Chain {
        steps: vec![
            step(format!("unique_{name}"), up, down)
                .outside_transaction()
                .post_deploy(),
        ],
        advice: vec![format!(
            "The binary you release answers a duplicate of ({list}) itself (diesel reports a \
             UniqueViolation naming {name}); after the rollout, `migrate run` builds the index."
        )],
    })
}

/// A constraint added NOT VALID, then validated: two post-deploy steps.
fn constraint(t: &str, name: &str, definition: &str, what: &str) -> Vec<Step> {
    let add = step(
        format!("{name}_not_valid"),
        format!(
            "-- Contract, step 1 of 2 (post-deploy): {what} for new and updated rows. NOT VALID holds its\n\
             -- lock just long enough to record the constraint; the next step checks the rows there.\n\
             ALTER TABLE {t} ADD CONSTRAINT {name} {definition} NOT VALID;\n"
        ),
        format!("ALTER TABLE {t} DROP CONSTRAINT {name};\n"),
    )
    .post_deploy();
    let validate = step(
        format!("validate_{name}"),
        format!(
            "-- Contract, step 2 of 2 (post-deploy): the rows already there, checked under a lock that\n\
             -- lets reads and writes through.\n\
             ALTER TABLE {t} VALIDATE CONSTRAINT {name};\n"
        ),
        "-- Nothing to undo: the constraint stays, proven.\nSELECT 1;\n".to_owned(),
    )
    .post_deploy();
    vec![add, validate]
}

/// `add-foreign-key`.
pub fn add_foreign_key(
    table: &Table,
    column: &str,
    references: &str,
    on_delete: &Option<String>,
    name: &Option<String>,
) -> Result<Chain, GenerateError> {
    let (t, c) = (&table.name, ident(column)?);
    let (target, target_column) = match references.split_once('(') {
        Some((target, rest)) => (
            ident(target.trim())?,
            ident(rest.trim_end_matches(')').trim())?,
        ),
        None => (ident(references)?, "id".to_owned()),
    };
    let name = ident(&name.clone().unwrap_or_else(|| format!("{t}_{c}_fkey")))?;
    let on_delete = on_delete
        .as_ref()
        .map_or(String::new(), |action| format!(" ON DELETE {action}"));
    let definition = format!("FOREIGN KEY ({c}) REFERENCES {target} ({target_column}){on_delete}");
    Ok(Chain {
        steps: constraint(
            t,
            &name,
            &definition,
            &format!("{t}.{c} must name a {target}"),
        ),
        advice: vec![
            format!(
                "The binary you release writes only {c} values that exist in {target}, and answers \
                 a ForeignKeyViolation naming {name} itself; after the rollout, `migrate run` adds \
                 and validates the key."
            ),
            format!(
                "Deleting from {target} looks {t} up by {c}: add-index {t} {c} first, unless an \
                 index on it exists."
            ),
        ],
    })
}

/// `add-check`.
pub fn add_check(table: &Table, name: &str, expression: &str) -> Result<Chain, GenerateError> {
    let (t, name) = (&table.name, ident(name)?);
    Ok(Chain {
        steps: constraint(t, &name, &format!("CHECK ({expression})"), expression),
        advice: vec![format!(
            "The binary you release never writes a row that fails ({expression}); after the \
             rollout, `migrate run` adds and validates the check."
        )],
    })
}

/// `set-not-null`, with the NULLs already there filled by `backfill_expr` first.
pub fn set_not_null(
    table: &Table,
    column: &Column,
    backfill_expr: &Option<String>,
    size: u64,
) -> Result<Chain, GenerateError> {
    let (t, c) = (&table.name, &column.name);
    if column.not_null {
        return Err(GenerateError::Usage(format!("{t}.{c} is NOT NULL already")));
    }
    let check = ident(&format!("{t}_{c}_not_null"))?;
    let mut steps = Vec::new();
    let of = if backfill_expr.is_some() { 4 } else { 3 };
    if let Some(expr) = backfill_expr {
        let key = needs_key(table, "set-not-null --backfill")?;
        steps.push(
            backfill(
                format!("backfill_{t}_{c}"),
                table,
                key,
                &format!("{c} = {expr}"),
                &format!("{c} IS NULL"),
                size,
                &format!("Contract, step 1 of 4 (post-deploy): {c} for the rows that have none."),
            )
            .post_deploy(),
        );
    }
    steps.extend(not_null_check(t, c, &check, of - 2, of));
    steps.push(set_not_null_step(t, c, &check, of, of, None));
    Ok(Chain {
        steps,
        advice: vec![format!(
            "The binary you release always writes {c}; after the rollout, `migrate run` {}checks \
             and sets NOT NULL. Then `diesel print-schema` writes {c} without Nullable, for the \
             release after.",
            if backfill_expr.is_some() {
                "fills the rows without one, "
            } else {
                ""
            }
        )],
    })
}

/// What the shadow column of a rename or a type change is computed from, each way.
pub struct Conversion<'a> {
    pub new_type: &'a str,
    /// From the old column to the new one, and back; `None` for a rename.
    pub using: Option<&'a str>,
    pub back: Option<&'a str>,
}

/// `rename-column` and `change-type`: a new column kept in step with the old one by a trigger
/// both ways, filled by a backfill, given the old one's indexes (and for a rename its checks);
/// then, after the rollout, the old column dropped.
pub fn shadow(
    table: &Table,
    old: &Column,
    new: &str,
    conversion: Conversion<'_>,
    size: u64,
) -> Result<Chain, GenerateError> {
    let (t, o, n) = (&table.name, &old.name, ident(new)?);
    if !old.blockers.is_empty() {
        return Err(GenerateError::Blocked {
            column: format!("{t}.{o}"),
            blockers: old.blockers.clone(),
        });
    }
    let key = needs_key(table, "rename-column and change-type")?;
    let renaming = conversion.using.is_none();
    let operation = if renaming { "rename" } else { "retype" };
    let new_type = conversion.new_type;
    let sync = ident(&format!("{t}_{o}_{n}_sync"))?;
    // In the trigger, expressions read the row being written, under the table's name.
    let (to_new, to_old) = match (conversion.using, conversion.back) {
        (Some(using), Some(back)) => (
            format!("(SELECT {using} FROM (SELECT NEW.*) AS {t})"),
            format!("(SELECT {back} FROM (SELECT NEW.*) AS {t})"),
        ),
        _ => (format!("NEW.{o}"), format!("NEW.{n}")),
    };
    let (using, back) = match (conversion.using, conversion.back) {
        (Some(using), Some(back)) => (using.to_owned(), back.to_owned()),
        _ => (o.clone(), n.clone()),
    };
    let converted = if renaming { "" } else { ", converted" };
    let trigger = Trigger {
        name: sync.clone(),
        create: format!(
            "CREATE FUNCTION {sync}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             BEGIN\n    \
             IF TG_OP = 'INSERT' THEN\n        \
             IF NEW.{n} IS NULL THEN\n            \
             NEW.{n} := {to_new}; -- written by a binary that knows only {o}\n        \
             ELSE\n            \
             NEW.{o} := {to_old};\n        \
             END IF;\n    \
             ELSIF NEW.{n} IS DISTINCT FROM OLD.{n} THEN\n        \
             -- Unless it is {o} as it stands{converted} (the backfill writes that).\n        \
             IF NEW.{n} IS DISTINCT FROM {to_new} THEN\n            \
             NEW.{o} := {to_old};\n        \
             END IF;\n    \
             ELSIF NEW.{o} IS DISTINCT FROM OLD.{o} THEN\n        \
             NEW.{n} := {to_new};\n    \
             END IF;\n    \
             RETURN NEW;\n\
             END\n\
             $$;\n\
             CREATE TRIGGER {sync} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {sync}();\n"
        ),
    };
    let mut steps = vec![step(
        format!("{operation}_{t}_{o}_expand"),
        format!(
            "-- Expand: {n} ({new_type}), kept in step with {o} both ways by a trigger, so that binaries\n\
             -- that write either serve together. {n} stays nullable and without a default until the\n\
             -- contract step: an insert that leaves it out gets it from {o}.\n\
             ALTER TABLE {t} ADD COLUMN {n} {new_type};\n\n{}",
            trigger.create
        ),
        format!("{}ALTER TABLE {t} DROP COLUMN {n};\n", trigger.drop(t)),
    )];
    steps.push(backfill(
        format!("{operation}_{t}_{o}_backfill"),
        table,
        key,
        &format!("{n} = {using}"),
        &format!("{n} IS DISTINCT FROM ({using})"),
        size,
        &format!("Expand: {n} for the rows there before the trigger."),
    ));
    let renamed = |name: &str| match name.contains(o.as_str()) {
        true => name.replace(o.as_str(), &n),
        false => format!("{name}_{n}"),
    };
    for (index, definition) in &old.indexes {
        let copy = ident(&renamed(index))?;
        let definition = substitute(definition, o, &n)
            .replacen(&format!(" {index} "), &format!(" {copy} "), 1)
            .replacen("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
            .replacen(
                "CREATE UNIQUE INDEX ",
                "CREATE UNIQUE INDEX CONCURRENTLY ",
                1,
            );
        steps.push(
            step(
                format!("{operation}_{t}_{o}_index_{copy}"),
                format!(
                    "-- Expand: {index} again, on {n}, built while reads and writes go on (outside a\n\
                     -- transaction: metadata.toml). {index} itself goes with {o}.\n\
                     -- squawk-ignore prefer-robust-stmts\n{definition};\n"
                ),
                format!("DROP INDEX CONCURRENTLY IF EXISTS {copy};\n"),
            )
            .outside_transaction(),
        );
    }
    // The checks of a rename carry over; those of a type change are written for the old type.
    let mut checks: Vec<(String, String)> = Vec::new();
    if renaming {
        for (name, definition) in &old.checks {
            checks.push((ident(&renamed(name))?, substitute(definition, o, &n)));
        }
    }
    let not_null = ident(&format!("{t}_{n}_not_null"))?;
    if old.not_null {
        checks.push((not_null.clone(), format!("CHECK ({n} IS NOT NULL)")));
    }
    if !checks.is_empty() {
        let adds: String = (checks.iter())
            .map(|(name, definition)| {
                format!("ALTER TABLE {t} ADD CONSTRAINT {name} {definition} NOT VALID;\n")
            })
            .collect();
        let drops: String = (checks.iter())
            .map(|(name, _)| format!("ALTER TABLE {t} DROP CONSTRAINT {name};\n"))
            .collect();
        let validates: String = (checks.iter())
            .map(|(name, _)| format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name};\n"))
            .collect();
        steps.push(
            step(
                format!("{operation}_{t}_{o}_checks_not_valid"),
                format!(
                    "-- Contract (post-deploy): {o}'s rules on {n} too, for new and updated rows (NOT VALID:\n\
                     -- a brief lock); the next step checks the rows there.\n{adds}"
                ),
                drops,
            )
            .post_deploy(),
        );
        steps.push(
            step(
                format!("{operation}_{t}_{o}_validate_checks"),
                format!(
                    "-- Contract (post-deploy): the rows already there, checked under a lock that lets reads\n\
                     -- and writes through.\n{validates}"
                ),
                "-- Nothing to undo: the constraints stay, proven.\nSELECT 1;\n".to_owned(),
            )
            .post_deploy(),
        );
    }

    // The contract: and its undoing, which puts back what it drops.
    let mut up = format!(
        "-- Contract (post-deploy): {o} goes, and the trigger with it; {n} takes {o}'s place.\n"
    );
    let mut down = format!(
        "-- What the step before left: {o} back, filled from {n} at once (a rollback puts back what the\n\
         -- contract dropped), with its rules and indexes, and the trigger.\n\
         ALTER TABLE {t} ADD COLUMN {o} {};\n\
         -- restore: the values of {o}, from {n}\n\
         UPDATE {t} SET {o} = {back};\n",
        old.sql_type
    );
    // Its default after the restore: a default given with the column would be written into
    // every row first, and one that is not a constant rewrites the table to do so.
    if let Some(default) = &old.default {
        down += &format!("ALTER TABLE {t} ALTER COLUMN {o} SET DEFAULT {default};\n");
    }
    if old.not_null {
        up += &format!(
            "-- contract: every binary that may still serve writes {n} or {o}, which the trigger copies\n\
             -- squawk-ignore adding-not-nullable-field\n\
             ALTER TABLE {t} ALTER COLUMN {n} SET NOT NULL;\n\
             -- squawk-ignore ban-drop-constraint\n\
             ALTER TABLE {t} DROP CONSTRAINT {not_null};\n"
        );
        down += &format!(
            "-- squawk-ignore adding-not-nullable-field\n\
             ALTER TABLE {t} ALTER COLUMN {o} SET NOT NULL;\n\
             -- squawk-ignore constraint-missing-not-valid\n\
             ALTER TABLE {t} ADD CONSTRAINT {not_null} CHECK ({n} IS NOT NULL);\n\
             -- squawk-ignore ban-drop-not-null\n\
             ALTER TABLE {t} ALTER COLUMN {n} DROP NOT NULL;\n"
        );
    }
    if let (Some(default), true) = (&old.default, renaming) {
        up += &format!("ALTER TABLE {t} ALTER COLUMN {n} SET DEFAULT {default};\n");
        down += &format!("ALTER TABLE {t} ALTER COLUMN {n} DROP DEFAULT;\n");
    }
    // NOT VALID: the values restored passed the same rules on the new column.
    for (name, definition) in &old.checks {
        down += &format!("ALTER TABLE {t} ADD CONSTRAINT {name} {definition} NOT VALID;\n");
    }
    for (_, definition) in &old.indexes {
        down += &format!("-- squawk-ignore require-concurrent-index-creation\n{definition};\n");
    }
    up += &trigger.drop(t);
    down += &trigger.create;
    up += &format!(
        "-- Every binary that may still serve uses {n}, since the one that ships the expand step.\n\
         -- contract: no binary that may still serve reads or writes {o}\n\
         -- squawk-ignore ban-drop-column\n\
         ALTER TABLE {t} DROP COLUMN {o};\n"
    );
    steps.push(step(format!("{operation}_{t}_{o}_contract"), up, down).post_deploy());

    let mut advice = vec![
        format!(
            "The binary you release reads and writes {n} instead of {o}: in src/schema.rs (`diesel \
             print-schema` once every step is applied) {n} replaces {o}; before the rollout, \
             `migrate run --skip-post-deploy` adds {n}, the trigger and the backfill, and the \
             previous binary keeps writing {o}, which the trigger copies."
        ),
        "After the rollout, `migrate run` applies the post-deploy steps: the rules on the new \
         column, then the contract, which drops the old column and the trigger."
            .to_owned(),
    ];
    if !renaming && !old.checks.is_empty() {
        advice.push(format!(
            "{o}'s checks ({}) are written for its old type and go with it: add-check {t} ... for {n}.",
            old.checks.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !renaming && old.default.is_some() {
        advice.push(format!(
            "{o}'s default is written for its old type: give {n} one with a migration of your own."
        ));
    }
    Ok(Chain { steps, advice })
}

/// `drop-column`: a NOT NULL column without a default gets `placeholder` as one first, so that
/// the binary that no longer writes it can insert while the previous one still reads it; the
/// column itself goes after the rollout.
pub fn drop_column(
    table: &Table,
    column: &Column,
    placeholder: &Option<String>,
) -> Result<Chain, GenerateError> {
    let (t, c) = (&table.name, &column.name);
    if !column.blockers.is_empty() {
        return Err(GenerateError::Blocked {
            column: format!("{t}.{c}"),
            blockers: column.blockers.clone(),
        });
    }
    let mut steps = Vec::new();
    if column.not_null && column.default.is_none() {
        let Some(placeholder) = placeholder else {
            return Err(GenerateError::Usage(format!(
                "{t}.{c} is NOT NULL without a default: the binary that stops writing it could not \
                 insert while the previous one, which reads it, still serves. Give --default VALUE, \
                 what rows inserted until it goes get"
            )));
        };
        steps.push(step(
            format!("{t}_{c}_placeholder_default"),
            format!(
                "-- Expand: a default for {c}, so that the binary that stops writing it can insert while\n\
                 -- the previous one, which reads it as NOT NULL, still serves.\n\
                 ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {placeholder};\n"
            ),
            format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT;\n"),
        ));
    }
    // Back nullable: its values went with it.
    let default = column.default.clone().or_else(|| placeholder.clone());
    let mut down = format!(
        "-- {c} back, empty (its values went with it), so nullable; its rules come back NOT VALID,\n\
         -- for new rows.\n\
         ALTER TABLE {t} ADD COLUMN {c} {};\n",
        column.sql_type
    );
    if let Some(default) = &default {
        down += &format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {default};\n");
    }
    for (name, definition) in &column.checks {
        down += &format!("ALTER TABLE {t} ADD CONSTRAINT {name} {definition} NOT VALID;\n");
    }
    for (_, definition) in &column.indexes {
        down += &format!("-- squawk-ignore require-concurrent-index-creation\n{definition};\n");
    }
    steps.push(
        step(
            format!("drop_{t}_{c}"),
            format!(
                "-- Contract (post-deploy): {c} goes, with its rules and indexes.\n\
                 -- contract: no binary that may still serve reads or writes {c}\n\
                 -- squawk-ignore ban-drop-column\n\
                 ALTER TABLE {t} DROP COLUMN {c};\n"
            ),
            down,
        )
        .post_deploy(),
    );
    Ok(Chain {
        steps,
        advice: vec![format!(
            "The binary you release neither reads nor writes {c} (take it out of src/schema.rs by \
             hand: the drift check does not mind a column the binary does not know); after the \
             rollout, `migrate run` drops it."
        )],
    })
}
