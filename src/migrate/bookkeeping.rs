//! The two bookkeeping tables, read and written here only: diesel's `__diesel_schema_migrations`
//! (which versions are applied, since when) and `__migration_checksums` (what their files were
//! when applied). Reads never create a table, so `migrate status`, `migrate sql` and the readiness
//! probe write nothing.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use super::source::{MigrationFiles, Migrations};

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

fn table_exists(conn: &mut PgConnection, table: &str) -> QueryResult<bool> {
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

/// The migrations of `set` the database has not applied, oldest first. Takes no lock, so a
/// readiness probe never waits for a running migration.
pub fn pending(
    conn: &mut PgConnection,
    set: Migrations,
) -> QueryResult<Vec<&'static MigrationFiles>> {
    let applied: Vec<String> = applied(conn)?.into_iter().map(|(v, _)| v).collect();
    let pending = set
        .0
        .iter()
        .filter(|files| !applied.contains(&files.version()));
    Ok(pending.collect())
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
    /// Those of `files` that differ from what was recorded.
    pub fn changed_files(&self, files: &MigrationFiles) -> Vec<&'static str> {
        let up = (self.up_sha256 != files.up_sha256()).then_some("up.sql");
        let down = (self.down_sha256 != files.down_sha256()).then_some("down.sql");
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

/// Records the checksums of applied `files`; `adopting` says it was applied without a record.
pub fn record(conn: &mut PgConnection, files: &MigrationFiles, adopting: bool) -> QueryResult<()> {
    conn.batch_execute(&format!(
        "{CREATE_CHECKSUMS}\n{}",
        record_sql(files, adopting)
    ))
}

// The statements below are what the service runs and what `migrate sql` prints, so a printed
// script does exactly what `migrate run` would. `build.rs` allows only letters and digits in a
// version, and checksums are hex, so only the folder name needs quoting.

/// Records the checksums of `files` against its application in diesel's table.
pub fn record_sql(files: &MigrationFiles, adopting: bool) -> String {
    format!(
        "INSERT INTO __migration_checksums (version, up_sha256, down_sha256, run_on, adopted, \
         name)\n\
         SELECT version, '{}', '{}', run_on, {adopting}, '{}' FROM __diesel_schema_migrations \
         WHERE version = '{}'\n\
         ON CONFLICT (version) DO UPDATE SET up_sha256 = EXCLUDED.up_sha256, \
         down_sha256 = EXCLUDED.down_sha256, run_on = EXCLUDED.run_on, recorded_at = now(), \
         adopted = EXCLUDED.adopted, name = EXCLUDED.name;",
        files.up_sha256(),
        files.down_sha256(),
        files.name.replace('\'', "''"),
        files.version(),
    )
}

pub fn forget_sql(files: &MigrationFiles) -> String {
    let version = files.version();
    format!("DELETE FROM __migration_checksums WHERE version = '{version}';")
}

/// What diesel's harness itself writes when it applies or reverts `files`, for a script.
pub fn diesel_sql(files: &MigrationFiles, applying: bool) -> String {
    let version = files.version();
    match applying {
        true => format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');"),
        false => format!("DELETE FROM __diesel_schema_migrations WHERE version = '{version}';"),
    }
}
