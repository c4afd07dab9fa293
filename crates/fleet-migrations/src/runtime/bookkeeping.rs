//! The two bookkeeping tables, read and written here only: diesel's `__diesel_schema_migrations`
//! (which versions are applied, since when) and `__migration_checksums` (what their files were
//! when applied). Reads never create a table, so `migrate status`, `migrate sql` and the readiness
//! probe write nothing.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use super::source::EmbeddedMigration;
use super::targets::Direction;

diesel::table! {
    /// diesel's own table, as its `MigrationConnection::setup` creates it.
    __diesel_schema_migrations (version) {
        version -> VarChar,
        run_on -> Timestamp,
    }
}

diesel::table! {
    __migration_checksums (version) {
        version -> VarChar,
        up_sha256 -> Text,
        down_sha256 -> Text,
        /// diesel's `run_on` of the application these checksums describe: a migration re-applied
        /// by another tool (`diesel migration redo`) gets a new `run_on`, and is adopted afresh.
        run_on -> Timestamp,
        /// Recorded for a migration found applied without a record, not when applying it.
        adopted -> Bool,
        // And `name`, the migration's folder, so that a binary without the migration can still
        // name it: read by `recorded`, not declared here, because older tables lack it.
    }
}

pub const CREATE_CHECKSUMS: &str = "\
CREATE TABLE IF NOT EXISTS __migration_checksums (
    version varchar(50) PRIMARY KEY,
    up_sha256 text NOT NULL,
    down_sha256 text NOT NULL,
    run_on timestamp NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    adopted boolean NOT NULL DEFAULT false,
    name text
);
ALTER TABLE __migration_checksums ADD COLUMN IF NOT EXISTS name text;";

/// Whether `table` exists where unqualified queries find it, by the catalog rather than by a
/// failing query, whose message depends on the server's language.
pub fn table_exists(conn: &mut PgConnection, table: &str) -> QueryResult<bool> {
    let exists = sql::<Bool>("to_regclass(")
        .bind::<Text, _>(table)
        .sql(") IS NOT NULL");
    diesel::select(exists).get_result(conn)
}

/// Applied versions and when each was applied, oldest first.
pub fn applied(conn: &mut PgConnection) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    use __diesel_schema_migrations::{table, version};
    match table_exists(conn, "__diesel_schema_migrations")? {
        true => table.order(version).load(conn),
        false => Ok(Vec::new()),
    }
}

/// What was recorded when a migration was applied.
#[derive(Debug, Queryable)]
pub struct Recorded {
    pub version: String,
    pub up_sha256: String,
    pub down_sha256: String,
    pub run_on: NaiveDateTime,
    pub adopted: bool,
    pub name: Option<String>,
}

impl Recorded {
    /// Those of `migration`'s files that differ from what was recorded.
    pub fn changed_files(&self, migration: &EmbeddedMigration) -> Vec<&'static str> {
        let up = (self.up_sha256 != migration.up_sha256()).then_some("up.sql");
        let down = (self.down_sha256 != migration.down_sha256()).then_some("down.sql");
        up.into_iter().chain(down).collect()
    }
}

/// Every recorded checksum, in version order.
pub fn recorded(conn: &mut PgConnection) -> QueryResult<Vec<Recorded>> {
    use __migration_checksums::*;
    // Through the row's JSON form: a table written by an older binary has no `name` column, and
    // reads never alter a table.
    let name = sql::<Nullable<Text>>("to_jsonb(__migration_checksums) ->> 'name'");
    match table_exists(conn, "__migration_checksums")? {
        true => (table.select((version, up_sha256, down_sha256, run_on, adopted, name)))
            .order(version)
            .load(conn),
        false => Ok(Vec::new()),
    }
}

/// How a migration's checksums come to be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// In the transaction that applies the migration.
    Applied,
    /// Later, for a migration found applied without a record (before checksums were kept, or by
    /// the diesel CLI).
    Adopted,
}

/// Records the checksums of an applied `migration`.
pub fn record(
    conn: &mut PgConnection,
    migration: &EmbeddedMigration,
    recording: Recording,
) -> QueryResult<()> {
    conn.batch_execute(&format!(
        "{CREATE_CHECKSUMS}\n{}",
        record_sql(migration, recording)
    ))
}

// The statements below are what the service runs and what `migrate sql` prints, so a printed
// script does exactly what `migrate run` would. `build.rs` allows only letters and digits in a
// version, and checksums are hex, so only the folder name needs quoting.

/// Records the checksums of `migration` against its application in diesel's table.
pub fn record_sql(migration: &EmbeddedMigration, recording: Recording) -> String {
    let adopted = recording == Recording::Adopted;
    format!(
        "INSERT INTO __migration_checksums (version, up_sha256, down_sha256, run_on, adopted, \
         name)\n\
         SELECT version, '{}', '{}', run_on, {adopted}, '{}' FROM __diesel_schema_migrations \
         WHERE version = '{}'\n\
         ON CONFLICT (version) DO UPDATE SET up_sha256 = EXCLUDED.up_sha256, \
         down_sha256 = EXCLUDED.down_sha256, run_on = EXCLUDED.run_on, recorded_at = now(), \
         adopted = EXCLUDED.adopted, name = EXCLUDED.name;",
        migration.up_sha256(),
        migration.down_sha256(),
        migration.name.replace('\'', "''"),
        migration.version(),
    )
}

/// What the checksum table gets when `migration` is applied (recorded) or reverted (forgotten).
pub fn checksums_sql(migration: &EmbeddedMigration, direction: Direction) -> String {
    match direction {
        Direction::Up => record_sql(migration, Recording::Applied),
        Direction::Down => format!(
            "DELETE FROM __migration_checksums WHERE version = '{}';",
            migration.version()
        ),
    }
}

/// What diesel's harness itself writes when it applies or reverts `migration`, for a script.
pub fn diesel_sql(migration: &EmbeddedMigration, direction: Direction) -> String {
    let version = migration.version();
    match direction {
        Direction::Up => {
            format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');")
        }
        Direction::Down => {
            format!("DELETE FROM __diesel_schema_migrations WHERE version = '{version}';")
        }
    }
}
