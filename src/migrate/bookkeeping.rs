//! The two bookkeeping tables, read and written here only: diesel's `__diesel_schema_migrations`
//! (which versions are applied, since when) and `__migration_checksums` (what their files were
//! when applied). Reads never create a table, so `migrate status`, `migrate sql` and the readiness
//! probe write nothing.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::dsl::{now, sql};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::upsert::excluded;

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
        recorded_at -> Timestamptz,
        adopted -> Bool,
    }
}

use __diesel_schema_migrations as diesel_table;
use __migration_checksums as checksums;

pub const CREATE_CHECKSUMS: &str = "\
CREATE TABLE IF NOT EXISTS __migration_checksums (
    version varchar(50) PRIMARY KEY,
    up_sha256 text NOT NULL,
    down_sha256 text NOT NULL,
    run_on timestamp NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    adopted boolean NOT NULL DEFAULT false
);";

fn table_exists(conn: &mut PgConnection, table: &str) -> QueryResult<bool> {
    let exists = sql::<Bool>("to_regclass(")
        .bind::<Text, _>(table)
        .sql(") IS NOT NULL");
    diesel::select(exists).get_result(conn)
}

/// Applied versions and when each was applied, oldest first.
pub fn applied(conn: &mut PgConnection) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    match table_exists(conn, "__diesel_schema_migrations")? {
        true => diesel_table::table.order(diesel_table::version).load(conn),
        false => Ok(Vec::new()),
    }
}

/// Names of the migrations of `set` the database has not applied, oldest first. Takes no lock,
/// so a readiness probe never waits for a running migration.
pub fn pending(conn: &mut PgConnection, set: Migrations) -> QueryResult<Vec<&'static str>> {
    let applied: Vec<String> = applied(conn)?.into_iter().map(|(v, _)| v).collect();
    let pending = set
        .0
        .iter()
        .filter(|files| !applied.contains(&files.version()));
    Ok(pending.map(|files| files.name).collect())
}

/// What was recorded when a migration was applied.
#[derive(Debug, Queryable)]
pub struct Recorded {
    pub version: String,
    pub up_sha256: String,
    pub down_sha256: String,
    pub run_on: NaiveDateTime,
}

impl Recorded {
    /// The files of `files` that differ from what was recorded.
    pub fn changed_files(&self, files: &MigrationFiles) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.up_sha256 != files.up_sha256() {
            changed.push("up.sql");
        }
        if self.down_sha256 != files.down_sha256() {
            changed.push("down.sql");
        }
        changed
    }
}

pub fn recorded(conn: &mut PgConnection) -> QueryResult<Vec<Recorded>> {
    if !table_exists(conn, "__migration_checksums")? {
        return Ok(Vec::new());
    }
    use checksums::{down_sha256, run_on, up_sha256, version};
    checksums::table
        .select((version, up_sha256, down_sha256, run_on))
        .load(conn)
}

/// Records the checksums of `files` against its current application in diesel's table; `adopted`
/// says it was applied before, without a record.
pub fn record(conn: &mut PgConnection, files: &MigrationFiles, adopting: bool) -> QueryResult<()> {
    use checksums::*;
    conn.batch_execute(CREATE_CHECKSUMS)?;
    let applied = diesel_table::table.find(files.version());
    let applied_on: NaiveDateTime = applied.select(diesel_table::run_on).first(conn)?;
    diesel::insert_into(table)
        .values((
            version.eq(files.version()),
            up_sha256.eq(files.up_sha256()),
            down_sha256.eq(files.down_sha256()),
            run_on.eq(applied_on),
            adopted.eq(adopting),
        ))
        .on_conflict(version)
        .do_update()
        .set((
            up_sha256.eq(excluded(up_sha256)),
            down_sha256.eq(excluded(down_sha256)),
            run_on.eq(excluded(run_on)),
            adopted.eq(excluded(adopted)),
            recorded_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn forget(conn: &mut PgConnection, files: &MigrationFiles) -> QueryResult<()> {
    let recorded = checksums::table.find(files.version());
    diesel::delete(recorded).execute(conn).map(drop)
}

/// What diesel's harness and [`record`] write when `files` is applied, as SQL for a script.
/// `build.rs` allows only letters and digits in a version and checksums are hex, so the literals
/// need no quoting.
pub fn record_sql(files: &MigrationFiles) -> String {
    let version = files.version();
    format!(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');\n\
         INSERT INTO __migration_checksums (version, up_sha256, down_sha256, run_on)\n\
         SELECT version, '{up}', '{down}', run_on FROM __diesel_schema_migrations WHERE version = '{version}'\n\
         ON CONFLICT (version) DO UPDATE SET up_sha256 = EXCLUDED.up_sha256, down_sha256 = \
         EXCLUDED.down_sha256, run_on = EXCLUDED.run_on, recorded_at = now(), adopted = false;",
        up = files.up_sha256(),
        down = files.down_sha256(),
    )
}

/// What diesel's harness and [`forget`] do when `files` is reverted, as SQL for a script.
pub fn forget_sql(files: &MigrationFiles) -> String {
    let version = files.version();
    format!(
        "DELETE FROM __diesel_schema_migrations WHERE version = '{version}';\n\
         DELETE FROM __migration_checksums WHERE version = '{version}';"
    )
}
