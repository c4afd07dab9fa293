//! Migrating, for the start-up stage and the `migrate` subcommands: a [`Migrator`] holds the
//! migration lock and drives diesel's `MigrationHarness`, whose `run_next_migration` and
//! `revert_last_migration` pick what runs. This module adds what diesel lacks for production:
//! - an advisory lock, so replicas starting together migrate once ([`lock`]);
//! - a SHA-256 of each migration's `up.sql` and `down.sql`, recorded with diesel's own
//!   bookkeeping row, so a migration edited after it ran, or one missing from the binary, stops
//!   the service instead of silently diverging;
//! - a refusal to apply a migration older than one already applied, as a branch merged late
//!   would have it, unless asked to ([`Order`]);
//! - short lock waits, retried, that name the session in the way ([`waits`]);
//! - a check of the live schema against `src/schema.rs` ([`drift`], [`readiness`]);
//! - targets (`--to VERSION`, `-n N`, `--all`) and the SQL printed instead of run.

mod bookkeeping;
mod drift;
mod harness;
mod lock;
mod readiness;
mod source;
mod waits;

use std::error::Error as StdError;

use chrono::NaiveDateTime;
use diesel::prelude::*;

pub use bookkeeping::{Recorded, Recording, applied, recorded, table_exists};
pub use drift::{Drift, SCHEMA, SchemaColumn};
pub use lock::LOCK_KEY;
pub use readiness::{Unready, readiness};
pub use source::{Batch, EmbeddedMigration, MIGRATIONS, Migrations};
pub use waits::Waits;

use harness::{Harness, Script};

/// Why a migration command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {}", one_line(&.0.to_string()))]
    Connect(#[source] ConnectionError),
    #[error(
        "another process held the migration lock for {0}s, so this one gave up; if no migration \
         is running, a session holding advisory lock {LOCK_KEY} is stuck (see pg_locks)"
    )]
    LockTimeout(u64),
    #[error("database error: {0}")]
    Database(#[source] Box<dyn StdError + Send + Sync>),
    #[error("migration {name} failed: {source}. {}", match .transactional {
        true => "It was rolled back whole; the migrations before it stay applied.",
        false => "It runs outside a transaction, so part of it may have been applied; \
                  see its up.sql for how to recover.",
    })]
    Failed {
        name: &'static str,
        transactional: bool,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("reverting migration {name} failed and was rolled back: {source}")]
    RevertFailed {
        name: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error(
        "the database's applied migrations do not match this binary: {}",
        .0.iter().filter_map(MigrationStatus::problem).collect::<Vec<_>>().join("; ")
    )]
    Verification(Vec<MigrationStatus>),
    #[error(
        "refusing to apply migrations out of order, so nothing was applied: {}",
        .0.iter().filter_map(MigrationStatus::problem).collect::<Vec<_>>().join("; ")
    )]
    OutOfOrder(Vec<MigrationStatus>),
    #[error(
        "migration {needed}, which this binary needs, comes after {} still pending: an earlier \
         release's contract steps were never applied. Once no replica of a release before them \
         serves, apply them with `students-api migrate run --to {}`, then run this again",
        match .blocking.len() {
            1 => format!("post-deploy migration {}", .blocking[0]),
            _ => format!("post-deploy migrations {}", .blocking.join(", ")),
        },
        .blocking.last().copied().unwrap_or_default()
    )]
    PostDeployFirst {
        needed: &'static str,
        blocking: Vec<&'static str>,
    },
    #[error("no migration {0:?} in this binary; `migrate status` lists them")]
    UnknownVersion(String),
    #[error("migration {0} is not applied, so there is nothing to revert down to")]
    NotApplied(&'static str),
}

/// libpq's messages span lines (`...failed: Connection refused\n\tIs the server running...`);
/// a log line should not.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<diesel::result::Error> for MigrateError {
    fn from(err: diesel::result::Error) -> Self {
        MigrateError::Database(err.into())
    }
}

/// One migration as `migrate status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: String,
    /// `None` when the migration is applied but not in this binary.
    pub name: Option<&'static str>,
    /// A post-deploy migration of this binary.
    pub post_deploy: bool,
    pub applied_on: Option<NaiveDateTime>,
    pub checksum: Checksum,
    /// Pending, though this newer migration (its label) is applied.
    pub out_of_order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Pending: nothing to compare yet.
    NotApplied,
    /// Matches what was recorded when it was applied.
    Verified,
    /// Applied without a record (before checksums were kept, or by the diesel CLI): the next
    /// `migrate run` or start records the current files.
    Unrecorded,
    /// Applied, but these of its files in the binary differ from those it was applied with.
    Changed(Vec<&'static str>),
    /// Applied in the database, absent from this binary.
    MissingFromBinary {
        /// Its folder's name, when the binary that applied it recorded one.
        folder: Option<String>,
        /// This binary's newest migration, when the missing one is newer still: the binary is
        /// older than the database. `None`: its folder was deleted, or came from another branch.
        binary_newest: Option<&'static str>,
    },
}

impl MigrationStatus {
    /// The migration's folder name, or its version when neither the binary nor the database
    /// knows the name.
    pub fn label(&self) -> &str {
        match (&self.name, &self.checksum) {
            (Some(name), _) => name,
            (
                None,
                Checksum::MissingFromBinary {
                    folder: Some(folder),
                    ..
                },
            ) => folder,
            _ => &self.version,
        }
    }

    /// What makes this migration and the binary disagree, and what to do about it, if anything.
    pub fn problem(&self) -> Option<String> {
        if let Some(newest) = &self.out_of_order {
            return Some(readiness::out_of_order(self.label(), newest));
        }
        let applied_on = self.applied_on?.format("%Y-%m-%d %H:%M:%S");
        let label = self.label();
        match &self.checksum {
            Checksum::Changed(files) => Some(format!(
                "migration {label} was applied on {applied_on} but its {} changed since. An \
                 applied migration must not be edited: restore migrations/{label} as it was \
                 and put the change in a new migration",
                files.join(" and ")
            )),
            Checksum::MissingFromBinary {
                binary_newest: Some(newest),
                ..
            } => Some(format!(
                "migration {label} was applied on {applied_on} by a newer build, and this \
                 binary (whose newest migration is {newest}) does not have it. Deploy that \
                 build or a later one, or first revert the migration with it: \
                 `students-api migrate revert --to {newest}`"
            )),
            Checksum::MissingFromBinary { .. } => Some(format!(
                "migration {label} was applied on {applied_on} but this binary does not have \
                 it, though it has migrations newer than it: its folder was deleted, or came \
                 from another branch. Restore migrations/{label}, or revert it with the build \
                 that has it"
            )),
            _ => None,
        }
    }
}

/// Which pending migrations `run` applies, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyTarget {
    All,
    /// Up to and including this version.
    Through(String),
}

/// Whether `run` applies post-deploy migrations (contract steps) or stops before the first, as a
/// fleet does before it rolls out the binary that has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostDeploy {
    Apply,
    Skip,
}

/// Applying or reverting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Whether `run` may apply a pending migration older than the newest applied one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Refuse it, before applying anything: a migration merged from a branch after newer ones
    /// ran was never tried against what they changed.
    InOrder,
    /// `--allow-out-of-order`: apply it, on purpose.
    AllowOutOfOrder,
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

/// A direct connection (never one from the request pool: the lock belongs to a session) holding
/// the migration lock until it is dropped.
pub struct Migrator {
    conn: PgConnection,
    set: Migrations,
    waits: Waits,
    /// Opens the second connection that watches for sessions in a migration's way.
    watcher: waits::Watcher,
}

impl Drop for Migrator {
    fn drop(&mut self) {
        // Closing the connection would release it too; this just does not wait for that.
        let _ = lock::release(&mut self.conn);
    }
}

impl Migrator {
    /// Connects to `url` and takes the migration lock, waiting up to `waits.migration_lock` for
    /// another process to finish migrating.
    pub fn connect(url: &str, set: Migrations, waits: Waits) -> Result<Self, MigrateError> {
        let conn = PgConnection::establish(url).map_err(MigrateError::Connect)?;
        Self::with_connection(conn, url, set, waits)
    }

    /// [`Migrator::connect`] over a connection to `url` already established (and not from a
    /// pool).
    pub fn with_connection(
        mut conn: PgConnection,
        url: &str,
        set: Migrations,
        waits: Waits,
    ) -> Result<Self, MigrateError> {
        let wait = waits.migration_lock;
        match lock::acquire(&mut conn, wait)? {
            true => Ok(Migrator {
                conn,
                set,
                waits,
                watcher: waits::Watcher::new(url),
            }),
            false => Err(MigrateError::LockTimeout(wait.as_secs())),
        }
    }

    /// Every migration of the binary, and every applied one the binary lacks, in version order.
    pub fn status(&mut self) -> Result<Vec<MigrationStatus>, MigrateError> {
        let mut applied = applied(&mut self.conn)?;
        let recorded = recorded(&mut self.conn)?;
        let mut rows: Vec<MigrationStatus> = (self.set.0.iter())
            .map(|migration| {
                let version = migration.version();
                let at = applied.iter().position(|(v, _)| *v == version);
                let applied_on = at.map(|at| applied.remove(at).1);
                let record = recorded.iter().find(|r| r.version == version);
                let checksum = match (applied_on, record) {
                    (None, _) => Checksum::NotApplied,
                    // Recorded for this application, not one another tool has since replaced.
                    (Some(run_on), Some(record)) if record.run_on == run_on => {
                        let changed = record.changed_files(migration);
                        match changed.is_empty() {
                            true => Checksum::Verified,
                            false => Checksum::Changed(changed),
                        }
                    }
                    (Some(_), _) => Checksum::Unrecorded,
                };
                MigrationStatus {
                    version,
                    name: Some(migration.name),
                    post_deploy: migration.post_deploy,
                    applied_on,
                    checksum,
                    out_of_order: None,
                }
            })
            .collect();
        // What is left of `applied` is not in the binary.
        let newest = self.set.0.last();
        rows.extend(applied.into_iter().map(|(version, run_on)| {
            let binary_newest = newest
                .filter(|newest| newest.version() < version)
                .map(|newest| newest.name);
            let folder = (recorded.iter())
                .find(|record| record.version == version)
                .and_then(|record| record.name.clone());
            MigrationStatus {
                version,
                name: None,
                post_deploy: false,
                applied_on: Some(run_on),
                checksum: Checksum::MissingFromBinary {
                    folder,
                    binary_newest,
                },
                out_of_order: None,
            }
        }));
        rows.sort_by(|a, b| a.version.cmp(&b.version));
        let newest = rows.iter().rev().find(|row| row.applied_on.is_some());
        if let Some((version, label)) =
            newest.map(|row| (row.version.clone(), row.label().to_owned()))
        {
            for row in rows.iter_mut().filter(|row| row.applied_on.is_none()) {
                if row.version < version {
                    row.out_of_order = Some(label.clone());
                }
            }
        }
        Ok(rows)
    }

    /// The migrations that make the database and this binary disagree; empty when they agree.
    pub fn verify(&mut self) -> Result<Vec<MigrationStatus>, MigrateError> {
        let mut rows = self.status()?;
        rows.retain(|row| row.problem().is_some());
        Ok(rows)
    }

    /// Fails on any problem [`Migrator::verify`] finds, out-of-order migrations aside when
    /// `order` allows them; then records the checksums of applied migrations that have none.
    /// Every command that changes the schema starts with this.
    fn check_and_adopt(&mut self, order: Order) -> Result<(), MigrateError> {
        let (problems, rows): (Vec<MigrationStatus>, Vec<MigrationStatus>) = self
            .status()?
            .into_iter()
            .partition(|row| row.problem().is_some());
        let (early, problems): (Vec<_>, Vec<_>) =
            (problems.into_iter()).partition(|row| row.out_of_order.is_some());
        if !problems.is_empty() {
            return Err(MigrateError::Verification(problems));
        }
        if !early.is_empty() && order == Order::InOrder {
            return Err(MigrateError::OutOfOrder(early));
        }
        for row in rows {
            let (Checksum::Unrecorded, Some(migration)) =
                (row.checksum, self.set.find(&row.version))
            else {
                continue;
            };
            match migration.batch {
                Some(batch) => {
                    log::info!(
                        "migration {migration} was applied by another tool, which ran one batch: \
                         running the rest"
                    );
                    (self.harness().finish_adopted_batches(migration, batch)).map_err(
                        |source| MigrateError::Failed {
                            name: migration.name,
                            transactional: false,
                            source,
                        },
                    )?;
                }
                None => bookkeeping::record(&mut self.conn, migration, Recording::Adopted)?,
            }
            log::info!("recorded the checksums of {migration}, applied before they were kept");
        }
        Ok(())
    }

    /// Applies pending migrations as `target` and `post_deploy` say, each in its own
    /// transaction together with its bookkeeping; stops at the first failure, and with
    /// `PostDeploy::Skip` before the first post-deploy migration (failing if one this binary
    /// needs is behind it). Refuses, before applying anything, a pending migration older than
    /// the newest applied one unless `order` allows it. Returns the names of those applied.
    pub fn run(
        &mut self,
        target: &ApplyTarget,
        post_deploy: PostDeploy,
        order: Order,
    ) -> Result<Vec<&'static str>, MigrateError> {
        self.check_and_adopt(order)?;
        let set = self.set;
        harness::apply(&mut self.harness(), set, target, post_deploy)
    }

    /// Reverts applied migrations, newest first, each in its own transaction together with its
    /// bookkeeping. Returns the names of those reverted. An out-of-order pending migration does
    /// not stop it: reverting the newer ones is one way to put it back in order.
    pub fn revert(&mut self, target: &RevertTarget) -> Result<Vec<&'static str>, MigrateError> {
        self.revert_checked(target, Order::AllowOutOfOrder)
    }

    fn revert_checked(
        &mut self,
        target: &RevertTarget,
        order: Order,
    ) -> Result<Vec<&'static str>, MigrateError> {
        self.check_and_adopt(order)?;
        let set = self.set;
        harness::revert(&mut self.harness(), set, target)
    }

    /// Reverts, then applies again exactly the migrations it reverted: proof that each
    /// `down.sql` undoes its `up.sql` well enough for `up.sql` to run again. Refuses first, as
    /// `run` does, when a pending migration is out of order.
    pub fn redo(&mut self, target: &RevertTarget) -> Result<Vec<&'static str>, MigrateError> {
        match self.revert_checked(target, Order::InOrder)?.first() {
            // Reverted newest first, so the first is where applying again stops.
            Some(newest) => self.run(
                &ApplyTarget::Through((*newest).into()),
                PostDeploy::Apply,
                Order::InOrder,
            ),
            None => Ok(Vec::new()),
        }
    }

    /// Whether this binary can serve the database as it now is (see [`readiness`]).
    pub fn readiness(&mut self) -> Result<Option<Unready>, MigrateError> {
        Ok(readiness(&mut self.conn, self.set, SCHEMA)?)
    }

    /// The SQL `run` would execute for `target`, bookkeeping included, without executing it: a
    /// script for `psql`.
    pub fn apply_sql(&mut self, target: &ApplyTarget) -> Result<String, MigrateError> {
        let mut script = Script::new(&mut self.conn, self.set, Direction::Up, self.waits)?;
        harness::apply(&mut script, self.set, target, PostDeploy::Apply)?;
        Ok(script.into_sql())
    }

    /// The SQL `revert` would execute for `target`, without executing it.
    pub fn revert_sql(&mut self, target: &RevertTarget) -> Result<String, MigrateError> {
        let mut script = Script::new(&mut self.conn, self.set, Direction::Down, self.waits)?;
        harness::revert(&mut script, self.set, target)?;
        Ok(script.into_sql())
    }

    fn harness(&mut self) -> Harness<'_> {
        Harness {
            conn: &mut self.conn,
            set: self.set,
            waits: self.waits,
            watcher: &mut self.watcher,
        }
    }
}
