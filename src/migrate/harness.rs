//! diesel's `MigrationHarness` wrapped so that each migration's checksums are recorded (or
//! forgotten) in the same transaction as diesel's own bookkeeping row, or, for `migrate sql`,
//! so that what would run is written to a script instead. Either way diesel's
//! `pending_migrations`, `run_next_migration` and `revert_last_migration` choose what runs.

use diesel::migration::{self, Migration, MigrationVersion};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{MigrationError, MigrationHarness};

use super::{MigrateError, MigrationFiles, Migrations, RevertTarget, bookkeeping};

pub struct Harness<'a> {
    conn: &'a mut PgConnection,
    set: Migrations,
    /// `Some` when printing: the script so far, and the versions applied once it has run.
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
        let applied = bookkeeping::applied(conn)?;
        let applied = applied
            .into_iter()
            .rev()
            .map(|(version, _)| version.into())
            .collect();
        Ok(Harness {
            conn,
            set,
            script: Some((String::new(), applied)),
        })
    }

    /// The script, with the bookkeeping tables created first when it applies migrations.
    pub fn into_script(self, applies: bool) -> String {
        let (sql, _) = self.script.unwrap_or_default();
        match (sql.is_empty(), applies) {
            (true, _) => "-- Nothing to do: the database is already there.\n".to_owned(),
            (false, true) => format!(
                "{}\n{}\n{sql}",
                migration::CREATE_MIGRATIONS_TABLE.trim_end(),
                bookkeeping::CREATE_CHECKSUMS
            ),
            (false, false) => sql,
        }
    }

    fn files(
        &self,
        version: &MigrationVersion<'_>,
    ) -> Result<&'static MigrationFiles, MigrateError> {
        let version = version.to_string();
        self.set
            .find(&version)
            .ok_or(MigrateError::UnknownVersion(version))
    }

    /// Applies pending migrations, oldest first, up to and including `last`.
    pub fn apply(
        &mut self,
        last: Option<&MigrationFiles>,
    ) -> Result<Vec<&'static str>, MigrateError> {
        let pending = self
            .pending_migrations(self.set)
            .map_err(MigrateError::Database)?;
        let mut applied = Vec::new();
        for migration in pending {
            let files = self.files(&migration.name().version())?;
            if last.is_some_and(|last| files.version() > last.version()) {
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

    /// How many of the applied migrations `target` reverts.
    pub fn count(&mut self, target: &RevertTarget) -> Result<usize, MigrateError> {
        let applied = self.applied_migrations().map_err(MigrateError::Database)?;
        Ok(match target {
            RevertTarget::Last(n) => *n,
            RevertTarget::All => applied.len(),
            RevertTarget::To(spec) => {
                let keep = self.set.find(spec);
                let keep = keep.ok_or_else(|| MigrateError::UnknownVersion(spec.clone()))?;
                let version = MigrationVersion::from(keep.version());
                if !applied.contains(&version) {
                    return Err(MigrateError::NotApplied(keep.name));
                }
                applied
                    .iter()
                    .take_while(|applied| **applied > version)
                    .count()
            }
        })
    }

    /// Reverts the last `count` applied migrations, newest first.
    pub fn revert(&mut self, count: usize) -> Result<Vec<&'static str>, MigrateError> {
        let mut reverted = Vec::new();
        while reverted.len() < count {
            let applied = self.applied_migrations().map_err(MigrateError::Database)?;
            let Some(newest) = applied.first() else { break };
            let name = self.files(newest)?.name;
            if let Err(source) = self.revert_last_migration(self.set) {
                return Err(MigrateError::RevertFailed { name, source });
            }
            reverted.push(name);
        }
        Ok(reverted)
    }

    /// Appends `body` and its bookkeeping to the script, in a transaction unless the migration
    /// runs outside one.
    fn print(&mut self, heading: String, files: &MigrationFiles, body: &str, bookkeeping: String) {
        let Some((sql, _)) = &mut self.script else {
            return;
        };
        sql.push_str(&heading);
        let (begin, commit) = match files.run_in_transaction {
            true => ("BEGIN;\n", "COMMIT;\n"),
            false => (
                "-- (outside a transaction: metadata.toml says run_in_transaction = false)\n",
                "",
            ),
        };
        *sql += &format!("{begin}{}\n{bookkeeping}\n{commit}", body.trim_end());
    }
}

/// Runs `step` in a transaction when the migration runs in one; diesel's own transaction around
/// the migration then becomes a savepoint in it, and the checksum commits with diesel's row.
fn in_its_transaction(
    conn: &mut PgConnection,
    files: &MigrationFiles,
    step: impl FnOnce(&mut PgConnection) -> migration::Result<MigrationVersion<'static>>,
) -> migration::Result<MigrationVersion<'static>> {
    match files.run_in_transaction {
        true => conn.transaction(step),
        false => step(conn),
    }
}

impl MigrationHarness<Pg> for Harness<'_> {
    fn run_migration(
        &mut self,
        migration: &dyn Migration<Pg>,
    ) -> migration::Result<MigrationVersion<'static>> {
        let files = self.files(&migration.name().version())?;
        let version = migration.name().version().as_owned();
        if let Some((_, applied)) = &mut self.script {
            applied.push(version.as_owned());
            applied.sort_by(|a, b| b.cmp(a));
            let heading = format!("\n-- Apply {files}\n");
            self.print(heading, files, files.up, bookkeeping::record_sql(files));
            return Ok(version);
        }
        log::info!("applying migration {files}");
        in_its_transaction(self.conn, files, |conn| {
            conn.run_migration(migration)?;
            bookkeeping::record(conn, files, false)?;
            Ok(version)
        })
    }

    fn revert_migration(
        &mut self,
        migration: &dyn Migration<Pg>,
    ) -> migration::Result<MigrationVersion<'static>> {
        let files = self.files(&migration.name().version())?;
        let version = migration.name().version().as_owned();
        if let Some((_, applied)) = &mut self.script {
            applied.retain(|applied| *applied != version);
            let down = files.down.ok_or(MigrationError::NoMigrationRevertFile)?;
            let heading = format!("\n-- Revert {files}\n");
            self.print(heading, files, down, bookkeeping::forget_sql(files));
            return Ok(version);
        }
        log::info!("reverting migration {files}");
        in_its_transaction(self.conn, files, |conn| {
            conn.revert_migration(migration)?;
            bookkeeping::forget(conn, files)?;
            Ok(version)
        })
    }

    /// Newest first, as diesel's own harness lists them.
    fn applied_migrations(&mut self) -> migration::Result<Vec<MigrationVersion<'static>>> {
        match &self.script {
            Some((_, applied)) => Ok(applied.iter().map(MigrationVersion::as_owned).collect()),
            None => self.conn.applied_migrations(),
        }
    }
}
