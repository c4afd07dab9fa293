//! Applying, reverting, verifying and inspecting migrations: what the start-up stage and the
//! `migrate` subcommands do, each through a [`Migrator`] that holds the migration lock.
//!
//! Diesel applies and reverts; this module adds what it lacks for production:
//! - an advisory lock, so replicas starting together migrate once ([`lock`]);
//! - a SHA-256 of each migration's `up.sql` and `down.sql`, recorded in `__migration_checksums`
//!   when it is applied, so a migration edited after it ran, or one missing from the binary, stops
//!   the service instead of silently diverging;
//! - targets (`--to VERSION`, `-n N`, `--all`) and SQL printed without running it.

pub mod files;
mod lock;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationConnection, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamp};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use files::{FILES, MigrationFiles};
pub use lock::LOCK_KEY;

/// Every folder under `migrations/`, compiled in; `build.rs` makes cargo rebuild when one changes.
pub const EMBEDDED: EmbeddedMigrations = embed_migrations!("migrations");

/// The service's migrations.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    embedded: &EMBEDDED,
    files: FILES,
};

/// The project's bookkeeping table, next to diesel's `__diesel_schema_migrations`.
pub const CHECKSUM_TABLE: &str = "__migration_checksums";

const CREATE_CHECKSUM_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS __migration_checksums (
    version varchar(50) PRIMARY KEY,
    up_sha256 text NOT NULL,
    down_sha256 text NOT NULL,
    -- diesel's run_on for the application these checksums describe: a migration re-applied by
    -- another tool (say `diesel migration redo`) gets a new run_on, and is then adopted afresh.
    run_on timestamp NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    adopted boolean NOT NULL DEFAULT false
);";

const CREATE_DIESEL_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);";

/// Diesel's embedding (what runs) and the files behind it (what is checksummed and printed).
#[derive(Clone, Copy)]
pub struct MigrationSet {
    pub embedded: &'static EmbeddedMigrations,
    pub files: &'static [MigrationFiles],
}

/// One migration of the set.
struct Entry {
    migration: Box<dyn Migration<Pg>>,
    name: String,
    version: String,
    files: MigrationFiles,
}

impl Entry {
    fn transactional(&self) -> bool {
        self.migration.metadata().run_in_transaction()
    }
}

impl MigrationSet {
    fn entries(&self) -> Result<Vec<Entry>, MigrateError> {
        let migrations = MigrationSource::<Pg>::migrations(self.embedded)
            .map_err(|source| MigrateError::Embedded(source.to_string()))?;
        migrations
            .into_iter()
            .map(|migration| {
                let name = migration.name().to_string();
                let files = *self
                    .files
                    .iter()
                    .find(|files| files.name == name)
                    .ok_or_else(|| MigrateError::Embedded(format!("no files for {name}")))?;
                Ok(Entry {
                    version: migration.name().version().to_string(),
                    name,
                    migration,
                    files,
                })
            })
            .collect()
    }
}

/// Why a migration command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database to migrate it: {0}")]
    Connect(#[source] ConnectionError),
    #[error(
        "another process held the migration lock for {0}s, so this one gave up; if no migration \
         is running, a session holding advisory lock {LOCK_KEY} is stuck (see pg_locks)"
    )]
    LockTimeout(u64),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("the embedded migrations are unreadable: {0}")]
    Embedded(String),
    #[error(
        "migration {name} failed: {source}. {}",
        if *.transactional {
            "It was rolled back whole; the migrations before it stay applied."
        } else {
            "It runs outside a transaction, so part of it may have been applied; \
             see its up.sql for how to recover."
        }
    )]
    Failed {
        name: String,
        transactional: bool,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("reverting migration {name} failed and was rolled back: {source}")]
    RevertFailed {
        name: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("{}", Problems(.0))]
    Verification(Vec<Problem>),
    #[error("no migration {0:?} in this binary; `migrate status` lists them")]
    UnknownVersion(String),
    #[error("migration {0} is not applied, so there is nothing to revert down to")]
    NotApplied(String),
}

/// Something wrong with what the database says it has applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Applied, but its files in this binary are not the ones it was applied with.
    Changed {
        name: String,
        files: Vec<&'static str>,
        applied_on: NaiveDateTime,
    },
    /// Applied in the database, absent from this binary (an older binary, or a deleted folder).
    MissingFromBinary {
        version: String,
        applied_on: NaiveDateTime,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Changed {
                name,
                files,
                applied_on,
            } => write!(
                f,
                "migration {name} was applied on {} but its {} changed since",
                applied_on.format("%Y-%m-%d %H:%M:%S"),
                files.join(" and ")
            ),
            Problem::MissingFromBinary {
                version,
                applied_on,
            } => write!(
                f,
                "migration version {version} was applied on {} but is not in this binary",
                applied_on.format("%Y-%m-%d %H:%M:%S")
            ),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the database's applied migrations do not match this binary: "
        )?;
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        f.write_str(
            ". Never edit a migration that has been applied anywhere: add a new one. \
             `migrate verify` shows the details",
        )
    }
}

/// The state of one migration, as `migrate status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub version: String,
    /// `None` when the migration is applied but not in this binary.
    pub name: Option<String>,
    pub applied_on: Option<NaiveDateTime>,
    pub checksum: Checksum,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Pending: nothing to compare yet.
    NotApplied,
    /// Matches what was recorded when it was applied.
    Verified,
    /// Applied without a record (before checksums existed, or by the diesel CLI): the next
    /// `migrate run` or start records the current files.
    Unrecorded,
    Changed(Vec<&'static str>),
    MissingFromBinary,
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checksum::NotApplied => f.write_str("-"),
            Checksum::Verified => f.write_str("ok"),
            Checksum::Unrecorded => f.write_str("not recorded yet"),
            Checksum::Changed(files) => write!(f, "CHANGED: {}", files.join(", ")),
            Checksum::MissingFromBinary => f.write_str("MISSING from this binary"),
        }
    }
}

/// Which applied migrations `revert` undoes, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertTarget {
    /// The newest `n`.
    Last(usize),
    /// Every one applied after this version, which stays applied.
    To(String),
    All,
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Timestamp)]
    run_on: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    up_sha256: String,
    #[diesel(sql_type = Text)]
    down_sha256: String,
    #[diesel(sql_type = Timestamp)]
    run_on: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// A direct connection (never one from the request pool: the lock belongs to a session) holding
/// the migration lock until it is dropped.
pub struct Migrator {
    conn: PgConnection,
    entries: Vec<Entry>,
}

impl Drop for Migrator {
    fn drop(&mut self) {
        // Closing the connection would release it too; this just does not wait for that.
        let _ = lock::release(&mut self.conn);
    }
}

impl Migrator {
    /// Connects to `url` and takes the migration lock, waiting up to `lock_timeout` for another
    /// process to finish migrating.
    pub fn connect(
        url: &str,
        set: MigrationSet,
        lock_timeout: Duration,
    ) -> Result<Self, MigrateError> {
        let conn = PgConnection::establish(url).map_err(MigrateError::Connect)?;
        Self::with_connection(conn, set, lock_timeout)
    }

    /// [`Migrator::connect`] over a connection already established (and not from a pool).
    pub fn with_connection(
        mut conn: PgConnection,
        set: MigrationSet,
        lock_timeout: Duration,
    ) -> Result<Self, MigrateError> {
        let entries = set.entries()?;
        if !lock::acquire(&mut conn, lock_timeout)? {
            return Err(MigrateError::LockTimeout(lock_timeout.as_secs()));
        }
        Ok(Migrator { conn, entries })
    }

    fn table_exists(&mut self, table: &str) -> QueryResult<bool> {
        diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS exists")
            .bind::<Text, _>(table)
            .get_result::<Exists>(&mut self.conn)
            .map(|row| row.exists)
    }

    /// Applied versions with their `run_on`, oldest first; reads without creating any table.
    fn applied(&mut self) -> QueryResult<Vec<Applied>> {
        if !self.table_exists("__diesel_schema_migrations")? {
            return Ok(Vec::new());
        }
        diesel::sql_query(
            "SELECT version::text AS version, run_on FROM __diesel_schema_migrations \
             ORDER BY version",
        )
        .load(&mut self.conn)
    }

    fn recorded(&mut self) -> QueryResult<HashMap<String, Recorded>> {
        if !self.table_exists(CHECKSUM_TABLE)? {
            return Ok(HashMap::new());
        }
        Ok(diesel::sql_query(
            "SELECT version::text AS version, up_sha256, down_sha256, run_on \
             FROM __migration_checksums",
        )
        .load::<Recorded>(&mut self.conn)?
        .into_iter()
        .map(|row| (row.version.clone(), row))
        .collect())
    }

    /// Every migration of the binary, and every applied one the binary lacks, in version order.
    pub fn status(&mut self) -> Result<Vec<Status>, MigrateError> {
        let applied: HashMap<String, NaiveDateTime> = self
            .applied()?
            .into_iter()
            .map(|row| (row.version, row.run_on))
            .collect();
        let recorded = self.recorded()?;
        let mut rows: Vec<Status> = self
            .entries
            .iter()
            .map(|entry| {
                let applied_on = applied.get(&entry.version).copied();
                let checksum = match (applied_on, recorded.get(&entry.version)) {
                    (None, _) => Checksum::NotApplied,
                    (Some(run_on), Some(record)) if record.run_on == run_on => {
                        let mut changed = Vec::new();
                        if record.up_sha256 != entry.files.up_sha256() {
                            changed.push("up.sql");
                        }
                        if record.down_sha256 != entry.files.down_sha256() {
                            changed.push("down.sql");
                        }
                        if changed.is_empty() {
                            Checksum::Verified
                        } else {
                            Checksum::Changed(changed)
                        }
                    }
                    (Some(_), _) => Checksum::Unrecorded,
                };
                Status {
                    version: entry.version.clone(),
                    name: Some(entry.name.clone()),
                    applied_on,
                    checksum,
                }
            })
            .collect();
        for (version, run_on) in &applied {
            if !self.entries.iter().any(|entry| &entry.version == version) {
                rows.push(Status {
                    version: version.clone(),
                    name: None,
                    applied_on: Some(*run_on),
                    checksum: Checksum::MissingFromBinary,
                });
            }
        }
        rows.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(rows)
    }

    /// What makes the database and this binary disagree; empty when they agree.
    pub fn verify(&mut self) -> Result<Vec<Problem>, MigrateError> {
        Ok(self
            .status()?
            .into_iter()
            .filter_map(|row| match row.checksum {
                Checksum::Changed(files) => Some(Problem::Changed {
                    name: row.name.unwrap_or(row.version),
                    files,
                    applied_on: row.applied_on?,
                }),
                Checksum::MissingFromBinary => Some(Problem::MissingFromBinary {
                    version: row.version,
                    applied_on: row.applied_on?,
                }),
                _ => None,
            })
            .collect())
    }

    /// Fails with every problem [`Migrator::verify`] finds; then records checksums of applied
    /// migrations that have none. Every command that changes the schema starts with this.
    fn check_and_adopt(&mut self) -> Result<(), MigrateError> {
        let problems = self.verify()?;
        if !problems.is_empty() {
            return Err(MigrateError::Verification(problems));
        }
        let unrecorded: Vec<String> = self
            .status()?
            .into_iter()
            .filter(|row| row.checksum == Checksum::Unrecorded)
            .map(|row| row.version)
            .collect();
        if unrecorded.is_empty() {
            return Ok(());
        }
        self.conn.batch_execute(CREATE_CHECKSUM_TABLE)?;
        for version in unrecorded {
            let entry = self.entry(&version);
            let (record, name) = (record_sql(entry, true), entry.name.clone());
            self.conn.batch_execute(&record)?;
            log::info!("recorded the checksums of {name}, applied before they were kept");
        }
        Ok(())
    }

    fn entry(&self, version: &str) -> &Entry {
        self.entries
            .iter()
            .find(|entry| entry.version == version)
            .expect("verified: every applied version is in the binary")
    }

    /// The entry a user's VERSION names: a version (`202611271634020000`), a folder prefix
    /// (`2026-11-27-163402-0000`) or a whole folder name.
    fn resolve(&self, spec: &str) -> Result<usize, MigrateError> {
        self.entries
            .iter()
            .position(|entry| {
                entry.version == spec
                    || entry.name == spec
                    || entry
                        .name
                        .split_once('_')
                        .is_some_and(|(prefix, _)| prefix == spec)
            })
            .ok_or_else(|| MigrateError::UnknownVersion(spec.to_owned()))
    }

    /// Indexes of the pending entries `run --to` would apply, oldest first.
    fn run_plan(&mut self, to: Option<&str>) -> Result<Vec<usize>, MigrateError> {
        let last = match to {
            Some(spec) => self.resolve(spec)?,
            None => self.entries.len().saturating_sub(1),
        };
        let applied: Vec<String> = self.applied()?.into_iter().map(|row| row.version).collect();
        Ok((0..self.entries.len())
            .filter(|&i| i <= last && !applied.contains(&self.entries[i].version))
            .collect())
    }

    /// Indexes of the applied entries `revert` would undo, newest first.
    fn revert_plan(&mut self, target: &RevertTarget) -> Result<Vec<usize>, MigrateError> {
        let applied: Vec<String> = self.applied()?.into_iter().map(|row| row.version).collect();
        let mut plan: Vec<usize> = (0..self.entries.len())
            .rev()
            .filter(|&i| applied.contains(&self.entries[i].version))
            .collect();
        match target {
            RevertTarget::Last(n) => plan.truncate(*n),
            RevertTarget::All => {}
            RevertTarget::To(spec) => {
                let keep = self.resolve(spec)?;
                if !applied.contains(&self.entries[keep].version) {
                    return Err(MigrateError::NotApplied(self.entries[keep].name.clone()));
                }
                plan.retain(|&i| i > keep);
            }
        }
        Ok(plan)
    }

    /// Applies pending migrations, all of them or up to and including `to`, each in its own
    /// transaction together with its bookkeeping; stops at the first failure. Returns the names
    /// of those applied.
    pub fn run(&mut self, to: Option<&str>) -> Result<Vec<String>, MigrateError> {
        self.check_and_adopt()?;
        let plan = self.run_plan(to)?;
        if !plan.is_empty() {
            self.conn.setup()?;
            self.conn.batch_execute(CREATE_CHECKSUM_TABLE)?;
        }
        let mut applied = Vec::with_capacity(plan.len());
        for i in plan {
            let entry = &self.entries[i];
            log::info!("applying migration {}", entry.name);
            let record = record_sql(entry, false);
            let apply = |conn: &mut PgConnection| -> Result<(), Box<dyn StdError + Send + Sync>> {
                conn.run_migration(&*entry.migration)?;
                conn.batch_execute(&record)?;
                Ok(())
            };
            let outcome = if entry.transactional() {
                // Diesel's own transaction around the migration becomes a savepoint in this one,
                // which also holds the checksum: both commit or neither does.
                self.conn.transaction(apply)
            } else {
                apply(&mut self.conn)
            };
            outcome.map_err(|source| MigrateError::Failed {
                name: entry.name.clone(),
                transactional: entry.transactional(),
                source,
            })?;
            applied.push(entry.name.clone());
        }
        Ok(applied)
    }

    /// Reverts applied migrations, newest first, each in its own transaction together with its
    /// bookkeeping. Returns the names of those reverted.
    pub fn revert(&mut self, target: &RevertTarget) -> Result<Vec<String>, MigrateError> {
        self.check_and_adopt()?;
        let plan = self.revert_plan(target)?;
        let mut reverted = Vec::with_capacity(plan.len());
        for i in plan {
            let entry = &self.entries[i];
            log::info!("reverting migration {}", entry.name);
            let forget = forget_sql(entry);
            let undo = |conn: &mut PgConnection| -> Result<(), Box<dyn StdError + Send + Sync>> {
                conn.revert_migration(&*entry.migration)?;
                conn.batch_execute(&forget)?;
                Ok(())
            };
            let outcome = if entry.transactional() {
                self.conn.transaction(undo)
            } else {
                undo(&mut self.conn)
            };
            outcome.map_err(|source| MigrateError::RevertFailed {
                name: entry.name.clone(),
                source,
            })?;
            reverted.push(entry.name.clone());
        }
        Ok(reverted)
    }

    /// Reverts, then applies again exactly the migrations it reverted: proof that each
    /// `down.sql` undoes its `up.sql` well enough for `up.sql` to run again.
    pub fn redo(&mut self, target: &RevertTarget) -> Result<Vec<String>, MigrateError> {
        let reverted = self.revert(target)?;
        match reverted.first() {
            // Reverted newest first, so the first is where re-applying stops.
            Some(newest) => {
                let newest = newest.clone();
                self.run(Some(&newest))
            }
            None => Ok(reverted),
        }
    }

    /// The SQL `run --to` (or with `down`, `revert`) would execute, in order, bookkeeping
    /// included, without executing it: a script `psql` could run instead.
    pub fn sql(&mut self, to: Option<&str>, down: bool) -> Result<String, MigrateError> {
        let plan = if down {
            let target = match to {
                Some(spec) => RevertTarget::To(spec.to_owned()),
                None => RevertTarget::Last(1),
            };
            self.revert_plan(&target)?
        } else {
            self.run_plan(to)?
        };
        let mut script = String::new();
        if plan.is_empty() {
            script.push_str("-- Nothing to do: the database is already there.\n");
            return Ok(script);
        }
        if !down {
            script.push_str(CREATE_DIESEL_TABLE);
            script.push('\n');
            script.push_str(CREATE_CHECKSUM_TABLE);
            script.push('\n');
        }
        for i in plan {
            let entry = &self.entries[i];
            // Diesel's harness writes __diesel_schema_migrations itself at run time; a script
            // has to say it.
            let version = quote(&entry.version);
            let (body, bookkeeping) = if down {
                (
                    entry.files.down.unwrap_or(""),
                    format!(
                        "DELETE FROM __diesel_schema_migrations WHERE version = {version};\n{}",
                        forget_sql(entry)
                    ),
                )
            } else {
                (
                    entry.files.up,
                    format!(
                        "INSERT INTO __diesel_schema_migrations (version) VALUES ({version});\n{}",
                        record_sql(entry, false)
                    ),
                )
            };
            script.push_str(&format!(
                "\n-- {} {}\n",
                if down { "Revert" } else { "Apply" },
                entry.name
            ));
            if entry.transactional() {
                script.push_str("BEGIN;\n");
            } else {
                script.push_str(
                    "-- (outside a transaction: metadata.toml says run_in_transaction = false)\n",
                );
            }
            script.push_str(body.trim_end());
            script.push('\n');
            script.push_str(&bookkeeping);
            script.push('\n');
            if entry.transactional() {
                script.push_str("COMMIT;\n");
            }
        }
        Ok(script)
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Records the checksums of applied `entry` against that application's `run_on`; `adopting`
/// says it was applied before, without a record.
fn record_sql(entry: &Entry, adopting: bool) -> String {
    let version = quote(&entry.version);
    format!(
        "INSERT INTO __migration_checksums (version, up_sha256, down_sha256, run_on, adopted)\n\
         SELECT version, {up}, {down}, run_on, {adopting} FROM __diesel_schema_migrations WHERE version = {version}\n\
         ON CONFLICT (version) DO UPDATE SET up_sha256 = EXCLUDED.up_sha256, \
         down_sha256 = EXCLUDED.down_sha256, run_on = EXCLUDED.run_on, \
         recorded_at = now(), adopted = EXCLUDED.adopted;",
        up = quote(&entry.files.up_sha256()),
        down = quote(&entry.files.down_sha256()),
    )
}

fn forget_sql(entry: &Entry) -> String {
    format!(
        "DELETE FROM __migration_checksums WHERE version = {};",
        quote(&entry.version)
    )
}
