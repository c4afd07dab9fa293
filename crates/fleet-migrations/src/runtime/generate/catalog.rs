//! What the generator reads of the live schema: a table's key, and a column's type, default,
//! `NOT NULL`, checks, indexes and the constraints it cannot carry over.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use super::GenerateError;

/// A table, as the generator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// The primary key, when it is one integer column: what a backfill walks.
    pub key: Option<String>,
}

/// A column, as the generator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// As PostgreSQL writes it (`text`, `character varying(40)`, `numeric(10,2)`).
    pub sql_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// The CHECK constraints on this column alone: name and `CHECK (...)`.
    pub checks: Vec<(String, String)>,
    /// The indexes that use it, other than the primary key: name and `CREATE ... INDEX ...`.
    pub indexes: Vec<(String, String)>,
    /// What makes it impossible to carry the column over to another (a foreign key, a primary
    /// key, an identity or a generated column), said in a few words each.
    pub blockers: Vec<String>,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    typname: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    sql_type: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Nullable<Text>)]
    default: Option<String>,
    #[diesel(sql_type = Bool)]
    identity: bool,
    #[diesel(sql_type = Bool)]
    generated: bool,
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// `name`, found as the service's unqualified queries find it (through `search_path`).
pub fn table(conn: &mut PgConnection, name: &str) -> Result<Table, GenerateError> {
    let exists = diesel::sql_query("SELECT to_regclass($1)::text AS name")
        .bind::<Text, _>(name)
        .get_result::<NullableName>(conn)?;
    if exists.name.is_none() {
        return Err(GenerateError::NoTable(name.to_owned()));
    }
    let key: Vec<KeyRow> = diesel::sql_query(
        "SELECT a.attname::text AS name, t.typname::text AS typname \
         FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
         JOIN pg_type t ON t.oid = a.atttypid \
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
    )
    .bind::<Text, _>(name)
    .load(conn)?;
    let key = match key.as_slice() {
        [only] if ["int2", "int4", "int8"].contains(&only.typname.as_str()) => {
            Some(only.name.clone())
        }
        _ => None,
    };
    Ok(Table {
        name: name.to_owned(),
        key,
    })
}

#[derive(QueryableByName)]
struct NullableName {
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

/// The column `name` of `table`.
pub fn column(conn: &mut PgConnection, table: &Table, name: &str) -> Result<Column, GenerateError> {
    let row: Option<ColumnRow> = diesel::sql_query(
        "SELECT format_type(a.atttypid, a.atttypmod) AS sql_type, a.attnotnull AS not_null, \
                pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity <> '' AS identity, \
                a.attgenerated <> '' AS generated \
         FROM pg_attribute a \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 \
           AND NOT a.attisdropped",
    )
    .bind::<Text, _>(&table.name)
    .bind::<Text, _>(name)
    .get_result(conn)
    .optional()?;
    let Some(row) = row else {
        return Err(GenerateError::NoColumn {
            table: table.name.clone(),
            column: name.to_owned(),
        });
    };
    let checks: Vec<Named> = diesel::sql_query(
        "SELECT c.conname::text AS name, pg_get_constraintdef(c.oid) AS definition \
         FROM pg_constraint c JOIN pg_attribute a \
           ON a.attrelid = c.conrelid AND c.conkey = ARRAY[a.attnum] \
         WHERE c.conrelid = to_regclass($1) AND a.attname = $2 AND c.contype = 'c' \
         ORDER BY c.conname",
    )
    .bind::<Text, _>(&table.name)
    .bind::<Text, _>(name)
    .load(conn)?;
    let indexes: Vec<Named> = diesel::sql_query(
        "SELECT c.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = to_regclass($1) AND NOT i.indisprimary \
         ORDER BY c.relname",
    )
    .bind::<Text, _>(&table.name)
    .load(conn)?;
    let constraints: Vec<Named> = diesel::sql_query(
        "SELECT c.conname::text AS name, \
                CASE c.contype WHEN 'f' THEN 'foreign key' WHEN 'p' THEN 'primary key' \
                               WHEN 'x' THEN 'exclusion constraint' ELSE 'constraint' END \
                AS definition \
         FROM pg_constraint c JOIN pg_attribute a ON a.attname = $2 \
         WHERE c.contype IN ('f', 'p', 'x') AND ( \
               (c.conrelid = to_regclass($1) AND a.attrelid = c.conrelid \
                AND a.attnum = ANY (c.conkey)) \
            OR (c.confrelid = to_regclass($1) AND a.attrelid = c.confrelid \
                AND a.attnum = ANY (c.confkey))) \
         ORDER BY c.conname",
    )
    .bind::<Text, _>(&table.name)
    .bind::<Text, _>(name)
    .load(conn)?;
    let mut blockers: Vec<String> = (constraints.into_iter())
        .map(|constraint| format!("{} {}", constraint.definition, constraint.name))
        .collect();
    if row.identity {
        blockers.push("an identity column".to_owned());
    }
    if row.generated {
        blockers.push("a generated column".to_owned());
    }
    Ok(Column {
        name: name.to_owned(),
        sql_type: row.sql_type,
        not_null: row.not_null,
        default: row.default,
        checks: checks.into_iter().map(|c| (c.name, c.definition)).collect(),
        indexes: (indexes.into_iter())
            .filter(|index| mentions(&index.definition, name))
            .map(|index| (index.name, index.definition))
            .collect(),
        blockers,
    })
}

/// Whether `sql` names `identifier` outside its string literals.
pub fn mentions(sql: &str, identifier: &str) -> bool {
    substitute(sql, identifier, "\u{0}") != sql
}

/// `sql` with every whole-word `from` outside string literals replaced by `to`.
pub fn substitute(sql: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut literal = false;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(if word == from { to } else { word });
        word.clear();
    };
    for c in sql.chars() {
        if !literal && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        if c == '\'' {
            literal = !literal;
        }
        out.push(c);
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::substitute;

    #[test]
    fn a_column_is_renamed_in_a_definition_but_not_in_other_words_or_in_literals() {
        assert_eq!(
            substitute(
                "CREATE INDEX student_major_idx ON public.student USING btree (major, id) \
                 WHERE (major <> 'major'::text)",
                "major",
                "programme"
            ),
            "CREATE INDEX student_major_idx ON public.student USING btree (programme, id) \
             WHERE (programme <> 'major'::text)"
        );
    }
}
