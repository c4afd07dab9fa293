//! This service's migrations, handed to the migration engine (`crates/fleet-migrations`, the
//! crate `diesel_fleet_migrations`), which is re-exported here: what the engine does and why is
//! in its README.
//!
//! `build.rs` embeds `migrations/` and the columns of `src/schema.rs` through the engine's
//! `build` module; this names the lock the service's processes share and the command that steers
//! them.

pub use diesel_fleet_migrations::*;

/// The key of the advisory lock every process migrating this service's database takes.
pub const LOCK_KEY: i64 = 0x5354_5544_454e_5453; // "STUDENTS"

/// The command messages tell a person to run.
pub const PROGRAM: &str = "students-api";

/// `list` as this service's migrations: its schema, its lock and its command.
pub const fn migrations(list: &'static [EmbeddedMigration]) -> Migrations {
    Migrations::new(list, SCHEMA, LOCK_KEY, PROGRAM)
}

/// Every folder under `migrations/`.
pub const MIGRATIONS: Migrations = migrations(include!(concat!(env!("OUT_DIR"), "/migrations.rs")));

/// Every column of `src/schema.rs`.
pub const SCHEMA: &[SchemaColumn] = include!(concat!(env!("OUT_DIR"), "/schema_columns.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_schema_is_src_schema_rs() {
        let student: Vec<_> = (SCHEMA.iter())
            .filter(|column| column.table == "student")
            .map(|column| (column.column, column.sql_type, column.nullable))
            .collect();
        assert!(student.contains(&("id", "Int4", false)));
        assert!(student.contains(&("created_at", "Timestamptz", false)));
        assert!(student.contains(&("email", "Text", true)));
        let source = include_str!("schema.rs");
        assert_eq!(SCHEMA.len(), source.matches(" -> ").count(), "{SCHEMA:?}");
        assert!(SCHEMA.iter().any(|column| column.table == "api_token"));
    }
}
