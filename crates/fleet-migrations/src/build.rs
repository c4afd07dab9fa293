//! The build-time half of the engine, for a service's `build.rs`: [`embed`] compiles two things
//! into the binary.
//! - The migrations folder: `$OUT_DIR/migrations.rs` holds every folder's `up.sql` and
//!   `down.sql` (through `include_str!`), and from its `metadata.toml` whether it runs in a
//!   transaction (diesel's key), whether it is a post-deploy step and whether it is batched (the
//!   engine's keys, which diesel ignores). `source.rs` says why this replaces diesel_migrations'
//!   `embed_migrations!`.
//! - The service's `schema.rs`, as `diesel print-schema` wrote it: `$OUT_DIR/schema_columns.rs`
//!   lists every column of every table with its SQL type and nullability, which the engine
//!   compares with the live catalog (`drift.rs`). Read from the file, so the list can never fall
//!   behind the `table!` declarations the queries are compiled against.
//!
//! Both files are Rust expressions (`&[EmbeddedMigration { .. }, ..]`, `&[SchemaColumn { .. },
//! ..]`) to `include!` where this crate's types are in scope. `rerun-if-changed` makes cargo
//! rebuild when a migration or the schema changes, so the binary never serves a stale set.
//!
//! ```ignore
//! // build.rs, with this crate as a build-dependency (`features = ["build"]`)
//! fn main() {
//!     diesel_fleet_migrations::build::embed("migrations", "src/schema.rs");
//! }
//! ```

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

/// Writes `$OUT_DIR/migrations.rs` from the folder `migrations` and `$OUT_DIR/schema_columns.rs`
/// from the file `schema`, both relative to the package's root. Panics, which fails the build,
/// on a folder or `metadata.toml` the engine could not run as written.
pub fn embed(migrations: &str, schema: &str) {
    println!("cargo:rerun-if-changed={migrations}");
    println!("cargo:rerun-if-changed={schema}");
    let package = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).to_owned();
    schema_columns(&package.join(schema), schema);

    let root = package.join(migrations);
    let mut folders: Vec<_> = fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("read {migrations}/: {err}"))
        .map(|entry| entry.expect("read a migrations folder entry").path())
        // What diesel counts as a migration: a folder with an up.sql.
        .filter(|path| path.join("up.sql").is_file())
        .collect();
    folders.sort();

    let mut code = String::from("&[\n");
    for folder in folders {
        let name = folder
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 folder name");
        let version = name.split('_').next().unwrap().replace('-', "");
        // Versions are written into `migrate sql` scripts as SQL literals without quoting.
        assert!(
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_alphanumeric()),
            "migration folder {name:?}: the part before `_` must be a timestamp"
        );
        let file = |file: &str| {
            format!(
                "include_str!({:?})",
                folder.join(file).display().to_string()
            )
        };
        let down = match folder.join("down.sql").is_file() {
            true => format!("Some({})", file("down.sql")),
            false => "None".to_owned(),
        };
        let metadata = Metadata::read(&folder.join("metadata.toml"));
        writeln!(
            code,
            "    EmbeddedMigration {{ name: {name:?}, up: {}, down: {down}, run_in_transaction: {}, \
             post_deploy: {}, batch: {} }},",
            file("up.sql"),
            metadata.run_in_transaction,
            metadata.post_deploy,
            metadata.batch,
        )
        .unwrap();
    }
    code.push(']');
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    fs::write(out, code).expect("write migrations.rs");
}

/// What a migration's `metadata.toml` says.
struct Metadata {
    run_in_transaction: bool,
    post_deploy: bool,
    /// `None`, or `Some(Batch { .. })`, as Rust.
    batch: String,
}

impl Metadata {
    /// Without a file: in a transaction, not post-deploy, as diesel reads a folder without one.
    fn read(path: &Path) -> Metadata {
        let Ok(text) = fs::read_to_string(path) else {
            return Metadata {
                run_in_transaction: true,
                post_deploy: false,
                batch: "None".to_owned(),
            };
        };
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let flag = |key: &str| {
            table.get(key).map(|value| {
                value
                    .as_bool()
                    .unwrap_or_else(|| panic!("{}: {key} must be a boolean", path.display()))
            })
        };
        // diesel reads a metadata.toml without this key as `false` (its serde default), the
        // opposite of a folder without the file; one written for another key would silently
        // take the migration out of its transaction. So it must be spelled out.
        let run_in_transaction = flag("run_in_transaction").unwrap_or_else(|| {
            panic!(
                "{}: say `run_in_transaction = true` (or false): diesel reads a missing key as \
                 false",
                path.display()
            )
        });
        let remaining_rows = table.get("remaining_rows").map(|value| {
            value.as_str().unwrap_or_else(|| {
                panic!(
                    "{}: remaining_rows must be a SQL query, as a string",
                    path.display()
                )
            })
        });
        let key_range = table.get("key_range").map(|value| {
            let query = value.as_str().unwrap_or_else(|| {
                panic!(
                    "{}: key_range must be a SQL query of two bigints, as a string",
                    path.display()
                )
            });
            let batch_size = match table.get("batch_size") {
                None => "KeyRange::DEFAULT_BATCH_SIZE".to_owned(),
                Some(value) => match value.as_integer() {
                    Some(size) if size > 0 => size.to_string(),
                    _ => panic!("{}: batch_size must be a positive integer", path.display()),
                },
            };
            format!("KeyRange {{ query: {query:?}, batch_size: {batch_size} }}")
        });
        if key_range.is_none() && table.contains_key("batch_size") {
            panic!("{}: batch_size is for a key_range", path.display());
        }
        let batch = match flag("batched").unwrap_or(false) {
            // Each batch is a transaction of its own, which the service opens; the diesel CLI,
            // which runs the file once, must not wrap it in one.
            true if run_in_transaction => panic!(
                "{}: a batched migration needs `run_in_transaction = false`: each batch runs in a \
                 transaction of its own",
                path.display()
            ),
            true => format!(
                "Some(Batch {{ remaining_rows: {remaining_rows:?}, key_range: {} }})",
                key_range.map_or("None".to_owned(), |range| format!("Some({range})"))
            ),
            false if remaining_rows.is_some() || key_range.is_some() => panic!(
                "{}: remaining_rows and key_range are for a batched migration (`batched = true`)",
                path.display()
            ),
            false => "None".to_owned(),
        };
        Metadata {
            run_in_transaction,
            post_deploy: flag("post_deploy").unwrap_or(false),
            batch,
        }
    }
}

/// Writes `$OUT_DIR/schema_columns.rs` from the schema file at `path` (`shown` in messages): one
/// `SchemaColumn` per column of each `diesel::table!`, with the column's SQL name (`#[sql_name]`
/// when it has one).
fn schema_columns(path: &Path, shown: &str) {
    let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("read {shown}: {err}"));
    let fail = |line: usize, what: &str| -> ! {
        panic!(
            "{shown}:{}: {what}; regenerate it with `diesel print-schema`",
            line + 1
        )
    };
    let mut code = String::from("&[\n");
    let mut table: Option<String> = None;
    let mut in_columns = false;
    let mut sql_name: Option<String> = None;
    for (at, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with("diesel::table!") || line.starts_with("table!") {
            table = None;
            in_columns = false;
            continue;
        }
        if let Some(attribute) = line.strip_prefix("#[") {
            if let Some(name) = attribute.strip_prefix("sql_name = ") {
                sql_name = Some(name.trim_end_matches(']').trim_matches('"').to_owned());
            }
            continue;
        }
        match (&table, in_columns) {
            (None, false) if line.ends_with('{') && line.contains('(') => {
                // `student (id) {`, or `schema.student (id) {`
                let name = line.split('(').next().unwrap_or_default().trim();
                let name = sql_name.take().unwrap_or_else(|| name.to_owned());
                table = Some(name);
                in_columns = true;
            }
            (Some(table_name), true) if line.contains("->") => {
                let (column, sql_type) = line.split_once("->").unwrap();
                let column = sql_name.take().unwrap_or_else(|| column.trim().to_owned());
                let sql_type = sql_type.trim().trim_end_matches(',').trim();
                let (nullable, sql_type) = match sql_type.strip_prefix("Nullable<") {
                    Some(inner) => (
                        true,
                        inner
                            .strip_suffix('>')
                            .unwrap_or_else(|| fail(at, "unbalanced Nullable<")),
                    ),
                    None => (false, sql_type),
                };
                writeln!(
                    code,
                    "    SchemaColumn {{ table: {table_name:?}, column: {column:?}, sql_type: {sql_type:?}, nullable: {nullable} }},"
                )
                .unwrap();
            }
            (Some(_), true) if line.starts_with('}') => {
                in_columns = false;
            }
            (_, false) => {} // `}` closing the macro, joinable!, allow_tables_to_appear_in_same_query!
            _ => fail(at, &format!("cannot read {line:?}")),
        }
    }
    code.push(']');
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("schema_columns.rs");
    fs::write(out, code).expect("write schema_columns.rs");
}
