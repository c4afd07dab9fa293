//! Everything but the build-time half: the [`Migrator`], what it is asked and what it reports.

mod bookkeeping;
pub mod cli;
pub mod drift;
mod error;
pub mod generate;
mod harness;
mod indexes;
pub mod lock;
mod plan;
mod progress;
mod readiness;
pub mod rules;
mod script;
mod source;
mod start;
mod status;
mod targets;
pub mod waits;

use diesel::prelude::*;

pub use bookkeeping::{Recorded, Recording, applied, recorded, table_exists};
pub use drift::{Drift, SchemaColumn};
pub use error::{MigrateError, one_line};
pub use readiness::{Unready, readiness};
pub use source::{Batch, EmbeddedMigration, KeyRange, Migrations, read_dir};
pub use start::{Started, connect_waiting, on_start};
pub use status::{Checksum, MigrationStatus};
pub use targets::{ApplyTarget, Direction, Order, PostDeploy, RevertTarget};
pub use waits::Waits;

use harness::Harness;
use script::Script;

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
        let _ = lock::release(&mut self.conn, self.set.lock_key);
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
        match lock::acquire(&mut conn, set.lock_key, wait)? {
            true => Ok(Migrator {
                conn,
                set,
                waits,
                watcher: waits::Watcher::new(url),
            }),
            false => Err(MigrateError::LockTimeout {
                seconds: wait.as_secs(),
                key: set.lock_key,
            }),
        }
    }

    /// Every migration of the binary, and every applied one the binary lacks, in version order.
    pub fn status(&mut self) -> Result<Vec<MigrationStatus>, MigrateError> {
        let mut applied = applied(&mut self.conn)?;
        let recorded = recorded(&mut self.conn)?;
        let mut rows: Vec<MigrationStatus> = (self.set.list.iter())
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
                    program: self.set.program,
                }
            })
            .collect();
        // What is left of `applied` is not in the binary.
        let newest = self.set.list.last();
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
                program: self.set.program,
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
        plan::apply(&mut self.harness(), set, target, post_deploy)
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
        plan::revert(&mut self.harness(), set, target)
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
        Ok(readiness(&mut self.conn, self.set)?)
    }

    /// The SQL `run` would execute for `target`, bookkeeping included, without executing it: a
    /// script for `psql`.
    pub fn apply_sql(&mut self, target: &ApplyTarget) -> Result<String, MigrateError> {
        let mut script = Script::new(&mut self.conn, self.set, Direction::Up, self.waits)?;
        plan::apply(&mut script, self.set, target, PostDeploy::Apply)?;
        Ok(script.into_sql())
    }

    /// The SQL `revert` would execute for `target`, without executing it.
    pub fn revert_sql(&mut self, target: &RevertTarget) -> Result<String, MigrateError> {
        let mut script = Script::new(&mut self.conn, self.set, Direction::Down, self.waits)?;
        plan::revert(&mut script, self.set, target)?;
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
