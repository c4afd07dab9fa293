//! diesel's `MigrationHarness`, wrapped so that each migration's checksums are recorded (or
//! forgotten) in the same transaction as diesel's own bookkeeping row, or, for `migrate sql`, so
//! that what would run is appended to a script instead. Either way diesel's `pending_migrations`,
//! `run_next_migration` and `revert_last_migration` choose what runs.

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::migration::{self, CREATE_MIGRATIONS_TABLE, Migration, MigrationVersion};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{MigrationError, MigrationHarness};

use super::{MigrateError, MigrationFiles, Migrations, RevertTarget, bookkeeping};

pub struct Harness<'a> {
    conn: &'a mut PgConnection,
    set: Migrations,
    /// When printing: the script so far, and what would be applied once it ran, newest first.
    script: Option<(String, Vec<MigrationVersion<'static>>)>,
}

impl<'a> Harness<'a> {
    pub fn applying(conn: &'a mut PgConnection, set: Migrations) -> Self {
        Harness {
            conn,
            set,
            script: None,
        }
    }

    /// Starts from what the database has applied, read without creating any table.
    pub fn printing(conn: &'a mut PgConnection, set: Migrations) -> Result<Self, MigrateError> {
        let applied = bookkeeping::applied(conn)?.into_iter().rev();
        let applied = applied.map(|(version, _)| version.into()).collect();
        Ok(Harness {
            conn,
            set,
            script: Some((String::new(), applied)),
        })
    }

    /// The script; one that `applies` creates the bookkeeping tables first, as the service does.
    pub fn into_script(self, applies: bool) -> String {
        let (sql, _) = self.script.unwrap_or_default();
        match (sql.is_empty(), applies) {
            (true, _) => "-- Nothing to do: the database is already there.\n".into(),
            (false, true) => {
                let tables = CREATE_MIGRATIONS_TABLE.trim_end();
                format!("{tables}\n{}\n{sql}", bookkeeping::CREATE_CHECKSUMS)
            }
            (false, false) => sql,
        }
    }

    fn find(&self, spec: &str) -> Result<&'static MigrationFiles, MigrateError> {
        let unknown = || MigrateError::UnknownVersion(spec.to_owned());
        self.set.find(spec).ok_or_else(unknown)
    }

    /// Applies pending migrations, oldest first, all of them or up to and including `to`; with
    /// `skip_post_deploy`, stops before the first post-deploy one, as diesel applies in order.
    pub fn apply(
        &mut self,
        to: Option<&str>,
        skip_post_deploy: bool,
    ) -> Result<Vec<&'static str>, MigrateError> {
        let last = to.map(|spec| self.find(spec)).transpose()?;
        let mut targeted: Vec<&'static MigrationFiles> = self
            .pending_migrations(self.set)
            .map_err(MigrateError::Database)?
            .iter()
            .map(|migration| self.find(&migration.name().version().to_string()))
            .collect::<Result<_, _>>()?;
        if let Some(last) = last {
            targeted.retain(|files| files.version() <= last.version());
        }
        let mut applied = Vec::new();
        for (at, files) in targeted.iter().enumerate() {
            if skip_post_deploy && files.post_deploy {
                // Stopping here is the point, unless a migration this binary needs is behind it:
                // the rollout would then wait on /ready for good, so say why now.
                let behind = &targeted[at..];
                if let (Some(needed), None) = (behind.iter().find(|f| !f.post_deploy), last) {
                    return Err(MigrateError::PostDeployFirst {
                        needed: needed.name,
                        blocking: (behind.iter().take_while(|f| f.post_deploy))
                            .map(|f| f.name)
                            .collect(),
                    });
                }
                break;
            }
            if let Err(source) = self.run_next_migration(self.set) {
                let (name, transactional) = (files.name, files.run_in_transaction);
                return Err(MigrateError::Failed {
                    name,
                    transactional,
                    source,
                });
            }
            applied.push(files.name);
        }
        Ok(applied)
    }

    /// Reverts applied migrations, newest first, as `target` says.
    pub fn revert(&mut self, target: &RevertTarget) -> Result<Vec<&'static str>, MigrateError> {
        let applied = self.applied_migrations().map_err(MigrateError::Database)?;
        let count = match target {
            RevertTarget::Last(n) => *n,
            RevertTarget::All => applied.len(),
            RevertTarget::To(spec) => {
                let keep = self.find(spec)?;
                let version = MigrationVersion::from(keep.version());
                if !applied.contains(&version) {
                    return Err(MigrateError::NotApplied(keep.name));
                }
                applied
                    .iter()
                    .take_while(|applied| **applied > version)
                    .count()
            }
        };
        let mut reverted = Vec::new();
        for newest in applied.iter().take(count) {
            let name = self.find(&newest.to_string())?.name;
            if let Err(source) = self.revert_last_migration(self.set) {
                return Err(MigrateError::RevertFailed { name, source });
            }
            reverted.push(name);
        }
        Ok(reverted)
    }

    /// Applies (or reverts) `migration` and its checksums, or appends both to the script.
    fn step(
        &mut self,
        migration: &dyn Migration<Pg>,
        applying: bool,
    ) -> migration::Result<MigrationVersion<'static>> {
        let files = self.find(&migration.name().version().to_string())?;
        let version = migration.name().version().as_owned();
        let checksums = match applying {
            true => bookkeeping::record_sql(files, false),
            false => bookkeeping::forget_sql(files),
        };
        if let Some((sql, applied)) = &mut self.script {
            let (verb, body) = match applying {
                true => ("Apply", files.up),
                false => (
                    "Revert",
                    files.down.ok_or(MigrationError::NoMigrationRevertFile)?,
                ),
            };
            let (begin, commit) = match files.run_in_transaction {
                true => ("BEGIN;\n", "COMMIT;\n"),
                false => (
                    "-- (outside a transaction: metadata.toml says run_in_transaction = false)\n",
                    "",
                ),
            };
            let diesel_row = bookkeeping::diesel_sql(files, applying);
            let body = body.trim_end();
            *sql +=
                &format!("\n-- {verb} {files}\n{begin}{body}\n{diesel_row}\n{checksums}\n{commit}");
            applied.retain(|applied| *applied != version);
            if applying {
                applied.push(version.as_owned());
                applied.sort_by(|a, b| b.cmp(a));
            }
            return Ok(version);
        }
        let (doing, done) = match applying {
            true => ("applying", "applied"),
            false => ("reverting", "reverted"),
        };
        log::info!("{doing} migration {files}");
        let started = Instant::now();
        let step = |conn: &mut PgConnection| -> migration::Result<_> {
            match applying {
                true => conn.run_migration(migration)?,
                false => conn.revert_migration(migration)?,
            };
            // The checksum table is created (or given its newer columns) here, when a migration is
            // really applied or reverted, not each time diesel lists the applied ones.
            conn.batch_execute(&format!("{}\n{checksums}", bookkeeping::CREATE_CHECKSUMS))?;
            Ok(version)
        };
        // In a transaction of its own, diesel's transaction around the migration becomes a
        // savepoint: the checksums commit with diesel's row, or neither does.
        let version = match files.run_in_transaction {
            true => self.conn.transaction(step),
            false => step(self.conn),
        }?;
        let took = started.elapsed().as_millis();
        log::info!("{done} migration {files} in {took} ms");
        Ok(version)
    }
}

impl MigrationHarness<Pg> for Harness<'_> {
    fn run_migration(
        &mut self,
        migration: &dyn Migration<Pg>,
    ) -> migration::Result<MigrationVersion<'static>> {
        self.step(migration, true)
    }

    fn revert_migration(
        &mut self,
        migration: &dyn Migration<Pg>,
    ) -> migration::Result<MigrationVersion<'static>> {
        self.step(migration, false)
    }

    /// Newest first, as diesel's own harness lists them (diesel creates its table when missing).
    fn applied_migrations(&mut self) -> migration::Result<Vec<MigrationVersion<'static>>> {
        match &self.script {
            Some((_, applied)) => Ok(applied.iter().map(MigrationVersion::as_owned).collect()),
            None => self.conn.applied_migrations(),
        }
    }
}
