//! Drift: a live schema that no longer matches the one this binary's queries were compiled
//! against (`src/schema.rs`), say after a hand-made `ALTER TABLE`. Without this check such a
//! database passes every probe while every query fails.
//!
//! Every column of every table in `src/schema.rs` must exist with the same SQL type and
//! nullability. Columns the binary does not know are fine: they are a newer release's expand
//! step.

use std::fmt;

use diesel::prelude::*;

/// A column of the service's `src/schema.rs`, as [`crate::build`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// diesel's name of its SQL type, as `diesel print-schema` writes it (`Int4`, `Text`).
    pub sql_type: &'static str,
    pub nullable: bool,
}

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

// The catalog as far as the check reads it. Through diesel's query builder rather than
// `sql_query`, because diesel prepares and caches only the former: `/ready` runs this on every
// probe, and planning a three-way catalog join each time cost more than running it.
mod catalog {
    diesel::table! {
        pg_catalog.pg_class (oid) {
            oid -> Oid,
            relname -> Text,
        }
    }
    diesel::table! {
        pg_catalog.pg_attribute (attrelid, attnum) {
            attrelid -> Oid,
            attnum -> Int2,
            attname -> Text,
            atttypid -> Oid,
            attnotnull -> Bool,
            attisdropped -> Bool,
        }
    }
    diesel::table! {
        pg_catalog.pg_type (oid) {
            oid -> Oid,
            typname -> Text,
        }
    }
    diesel::joinable!(pg_attribute -> pg_class (attrelid));
    diesel::joinable!(pg_attribute -> pg_type (atttypid));
    diesel::allow_tables_to_appear_in_same_query!(pg_class, pg_attribute, pg_type);

    diesel::define_sql_function! {
        /// Whether an unqualified name finds this relation through `search_path`.
        fn pg_table_is_visible(relation: diesel::sql_types::Oid) -> diesel::sql_types::Bool;
    }
}

/// Whether post-deploy migrations of this binary are still pending, which explains one
/// difference: a column the binary declares `NOT NULL` that a pending contract step has yet to
/// make so. The binary serves without its post-deploy steps, so it reads such a column with a
/// fallback (docs/migrations.md, "Changing the schema under a running fleet").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractPending {
    Yes,
    No,
}

/// How the live schema differs from `expected`, in one catalog query per table (`src/schema.rs`
/// has two). Tables are found as the
/// binary's unqualified queries find them: through `search_path`.
pub fn drift(
    conn: &mut PgConnection,
    expected: &[SchemaColumn],
    contract: ContractPending,
) -> QueryResult<Vec<Drift>> {
    let mut tables: Vec<&str> = expected.iter().map(|column| column.table).collect();
    tables.dedup();
    use catalog::{pg_attribute as a, pg_class as c, pg_table_is_visible, pg_type as t};
    // (table, column, typname, NOT NULL). One query per table, each naming it with `=`: with
    // `relname = ANY($1)` PostgreSQL never settles on a generic plan for this join and plans it
    // again on every probe, 0.5 ms each time; with `=` it plans once per connection.
    let mut live: Vec<(String, String, String, bool)> = Vec::new();
    for table in &tables {
        live.extend(
            a::table
                .inner_join(c::table)
                .inner_join(t::table)
                .filter(c::relname.eq(table))
                .filter(pg_table_is_visible(c::oid))
                .filter(a::attnum.gt(0))
                .filter(a::attisdropped.eq(false))
                .select((c::relname, a::attname, t::typname, a::attnotnull))
                .load::<(String, String, String, bool)>(conn)?,
        );
    }

    let mut drift = Vec::new();
    for table in tables {
        if !live.iter().any(|(name, ..)| name == table) {
            drift.push(Drift {
                table,
                column: None,
                problem: "is missing".to_owned(),
            });
            continue;
        }
        for expected in expected.iter().filter(|column| column.table == table) {
            let found = (live.iter())
                .find(|(name, column, ..)| name == table && column == expected.column)
                .map(|(_, _, typname, not_null)| (typname, *not_null));
            let problem = match found {
                None => Some(format!(
                    "is missing (this binary reads it as {})",
                    expected.described()
                )),
                Some((typname, _)) if *typname != expected.typname() => Some(format!(
                    "is {typname} in the database, {} in this binary",
                    expected.typname()
                )),
                Some((_, true)) if expected.nullable => {
                    Some("is NOT NULL in the database, nullable in this binary".to_owned())
                }
                Some((_, false)) if !expected.nullable && contract == ContractPending::No => {
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
