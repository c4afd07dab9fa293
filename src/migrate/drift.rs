//! Drift: a live schema that no longer matches the one this binary's queries were compiled
//! against (`src/schema.rs`), say after a hand-made `ALTER TABLE`. Without this check such a
//! database passes every probe while every query fails.
//!
//! Every column of every table in `src/schema.rs` must exist with the same SQL type and
//! nullability. Columns the binary does not know are fine: they are a newer release's expand
//! step.

use std::fmt;

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Text};

/// A column of `src/schema.rs`, as `build.rs` read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// diesel's name of its SQL type, as `diesel print-schema` writes it (`Int4`, `Text`).
    pub sql_type: &'static str,
    pub nullable: bool,
}

/// Every column of `src/schema.rs`.
pub const SCHEMA: &[SchemaColumn] = include!(concat!(env!("OUT_DIR"), "/schema_columns.rs"));

impl SchemaColumn {
    /// PostgreSQL's `pg_type.typname` of the column's type. `diesel print-schema` names a type
    /// after its typname (`int4` is `Int4`); the aliases diesel also accepts are mapped back.
    fn typname(&self) -> String {
        let lower = self.sql_type.to_ascii_lowercase();
        let lower = lower.rsplit("::").next().unwrap_or_default();
        if let Some(element) = lower
            .strip_prefix("array<")
            .and_then(|rest| rest.strip_suffix('>'))
        {
            let element = element
                .trim_start_matches("nullable<")
                .trim_end_matches('>');
            return format!("_{}", alias(element));
        }
        alias(lower).to_owned()
    }

    fn described(&self) -> String {
        let null = match self.nullable {
            true => "nullable",
            false => "NOT NULL",
        };
        format!("{} {null}", self.typname())
    }
}

fn alias(lower: &str) -> &str {
    match lower {
        "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "double" => "float8",
        "float" => "float4",
        "binary" => "bytea",
        "timestamp" => "timestamp",
        other => other,
    }
}

/// One difference between the live catalog and `src/schema.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub table: &'static str,
    /// `None`: the whole table is missing.
    pub column: Option<&'static str>,
    pub problem: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(f, "{}.{column} {}", self.table, self.problem),
            None => write!(f, "table {} {}", self.table, self.problem),
        }
    }
}

#[derive(QueryableByName)]
struct LiveColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    typname: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

/// Whether post-deploy migrations of this binary are still pending, which explains one
/// difference: a column the binary declares `NOT NULL` that a pending contract step has yet to
/// make so. The binary serves without its post-deploy steps, so it reads such a column with a
/// fallback (README, "Changing the schema under a running fleet").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractPending {
    Yes,
    No,
}

/// How the live schema differs from `expected`, in one catalog query. Tables are found as the
/// binary's unqualified queries find them: through `search_path`.
pub fn drift(
    conn: &mut PgConnection,
    expected: &[SchemaColumn],
    contract: ContractPending,
) -> QueryResult<Vec<Drift>> {
    let mut tables: Vec<&str> = expected.iter().map(|column| column.table).collect();
    tables.dedup();
    let live: Vec<LiveColumn> = diesel::sql_query(
        "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
                t.typname::text AS typname, a.attnotnull AS not_null \
           FROM pg_attribute a \
           JOIN pg_class c ON c.oid = a.attrelid \
           JOIN pg_type t ON t.oid = a.atttypid \
          WHERE a.attrelid = ANY (SELECT to_regclass(name) FROM unnest($1) AS name) \
            AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind::<Array<Text>, _>(&tables)
    .load(conn)?;

    let mut drift = Vec::new();
    for table in tables {
        if !live.iter().any(|column| column.table_name == table) {
            drift.push(Drift {
                table,
                column: None,
                problem: "is missing".to_owned(),
            });
            continue;
        }
        for expected in expected.iter().filter(|column| column.table == table) {
            let found = (live.iter())
                .find(|live| live.table_name == table && live.column_name == expected.column);
            let problem = match found {
                None => Some(format!(
                    "is missing (this binary reads it as {})",
                    expected.described()
                )),
                Some(live) if live.typname != expected.typname() => Some(format!(
                    "is {} in the database, {} in this binary",
                    live.typname,
                    expected.typname()
                )),
                Some(live) if live.not_null && expected.nullable => {
                    Some("is NOT NULL in the database, nullable in this binary".to_owned())
                }
                Some(live)
                    if !live.not_null && !expected.nullable && contract == ContractPending::No =>
                {
                    Some("is nullable in the database, NOT NULL in this binary".to_owned())
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                drift.push(Drift {
                    table,
                    column: Some(expected.column),
                    problem,
                });
            }
        }
    }
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_schema_is_src_schema_rs() {
        let student: Vec<_> = (SCHEMA.iter())
            .filter(|column| column.table == "student")
            .map(|column| (column.column, column.typname(), column.nullable))
            .collect();
        assert!(student.contains(&("id", "int4".to_owned(), false)));
        assert!(student.contains(&("created_at", "timestamptz".to_owned(), false)));
        assert!(student.contains(&("email", "text".to_owned(), true)));
        let source = include_str!("../schema.rs");
        assert_eq!(student.len(), source.matches(" -> ").count(), "{student:?}");
    }

    #[test]
    fn diesel_aliases_map_to_postgresql_type_names() {
        let column = |sql_type| SchemaColumn {
            table: "t",
            column: "c",
            sql_type,
            nullable: false,
        };
        for (diesel, pg) in [
            ("Integer", "int4"),
            ("BigInt", "int8"),
            ("Varchar", "varchar"),
            ("Timestamptz", "timestamptz"),
            ("diesel::sql_types::Bool", "bool"),
            ("Array<Nullable<Text>>", "_text"),
        ] {
            assert_eq!(column(diesel).typname(), pg, "{diesel}");
        }
    }
}
