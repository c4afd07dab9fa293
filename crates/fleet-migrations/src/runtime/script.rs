//! diesel's `MigrationHarness` that runs nothing: [`Script`] appends what [`super::harness::Harness`]
//! would execute to a script for `migrate sql`.

use diesel::migration::{self, CREATE_MIGRATIONS_TABLE, Migration, MigrationVersion};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{MigrationError, MigrationHarness};

use super::bookkeeping::{self};
use super::error::MigrateError;
use super::plan::embedded;
use super::source::{EmbeddedMigration, KeyRange, Migrations};
use super::targets::Direction;
use super::waits::{self, Waits};

/// Writes what [`Harness`] would execute, bookkeeping included, as a script for `psql`; it
/// keeps its own list of what would be applied once the script so far ran.
pub struct Script {
    set: Migrations,
    direction: Direction,
    waits: Waits,
    sql: String,
    /// Newest first.
    applied: Vec<MigrationVersion<'static>>,
}

impl Script {
    /// Starts from what the database has applied, read without creating any table.
    pub fn new(
        conn: &mut PgConnection,
        set: Migrations,
        direction: Direction,
        waits: Waits,
    ) -> Result<Self, MigrateError> {
        let applied = bookkeeping::applied(conn)?.into_iter().rev();
        let applied = applied.map(|(version, _)| version.into()).collect();
        Ok(Script {
            set,
            direction,
            waits,
            sql: String::new(),
            applied,
        })
    }

    /// The script; one that applies creates the bookkeeping tables first, as the service does.
    pub fn into_sql(self) -> String {
        match (self.sql.is_empty(), self.direction) {
            (true, _) => "-- Nothing to do: the database is already there.\n".into(),
            (false, Direction::Up) => {
                let tables = CREATE_MIGRATIONS_TABLE.trim_end();
                format!("{tables}\n{}\n{}", bookkeeping::CREATE_CHECKSUMS, self.sql)
            }
            (false, Direction::Down) => self.sql,
        }
    }

    fn step(
        &mut self,
        migration: &dyn Migration<Pg>,
        direction: Direction,
    ) -> migration::Result<MigrationVersion<'static>> {
        let embedded = embedded(self.set, migration)?;
        let version = migration.name().version().as_owned();
        let (verb, body) = match direction {
            Direction::Up => ("Apply", embedded.up),
            Direction::Down => (
                "Revert",
                (embedded.down).ok_or(MigrationError::NoMigrationRevertFile)?,
            ),
        };
        // The lock waits the service sets; psql does not retry one that runs out.
        let (begin, commit) = match embedded.run_in_transaction {
            true => (
                format!(
                    "BEGIN;\nSET LOCAL lock_timeout = {}; -- migration_lock_wait\n",
                    waits::lock_timeout_literal(self.waits.table_lock)
                ),
                "COMMIT;\n",
            ),
            false => (
                format!(
                    "-- (outside a transaction: metadata.toml says run_in_transaction = false)\n\
                     SET lock_timeout = {}; -- migration_lock_budget\n",
                    waits::lock_timeout_literal(self.waits.budget.max(self.waits.table_lock))
                ),
                "RESET lock_timeout;\n",
            ),
        };
        let diesel_row = bookkeeping::diesel_sql(embedded, direction);
        let checksums = bookkeeping::checksums_sql(embedded, direction);
        let body = body.trim_end();
        self.sql += &match (embedded.batch, direction) {
            (Some(_), Direction::Up) => self.batches(embedded, body, &diesel_row, &checksums),
            _ => format!(
                "\n-- {verb} {embedded}\n{begin}{body}\n{diesel_row}\n{checksums}\n{commit}"
            ),
        };
        self.applied.retain(|applied| *applied != version);
        if direction == Direction::Up {
            self.applied.push(version.as_owned());
            self.applied.sort_by(|a, b| b.cmp(a));
        }
        Ok(version)
    }
}

impl Script {
    /// A batched migration as the service runs it: a `DO` block that runs the statement, commits,
    /// and repeats until a run changes no row, which also records the migration. (A `DO` block
    /// may commit from PostgreSQL 11 on, when psql runs it outside a transaction, as here.)
    fn batches(
        &self,
        embedded: &EmbeddedMigration,
        body: &str,
        diesel_row: &str,
        checksums: &str,
    ) -> String {
        let pause = self.waits.batch_pause.as_secs_f64();
        let lock = waits::lock_timeout_literal(self.waits.table_lock);
        let statement = waits::lock_timeout_literal(self.waits.batch_statement);
        let tag = (0..)
            .map(|n| format!("$batch{n}$"))
            .find(|tag| !body.contains(tag.as_str()))
            .expect("some tag is free");
        if let Some(range) = embedded.batch.and_then(|batch| batch.key_range) {
            let query = range.query.trim().trim_end_matches(';');
            let (size, start, end) = (range.batch_size, KeyRange::START, KeyRange::END);
            return format!(
                "\n-- Apply {embedded}\n\
                 -- Batched by key: the statement runs once per slice of {size} keys, each time in a\n\
                 -- transaction of its own, from the lowest key to the highest one read at the start;\n\
                 -- the last slice records the migration.\n\
                 DO $batched$\n\
                 DECLARE\n    low bigint;\n    high bigint;\n\
                 BEGIN\n    \
                 SELECT range.low, range.high INTO low, high FROM ({query}) AS range (low, high);\n    \
                 LOOP\n        \
                 PERFORM set_config('lock_timeout', {lock}, true); -- migration_lock_wait\n        \
                 PERFORM set_config('statement_timeout', {statement}, true); -- backfill_statement_timeout\n        \
                 IF high IS NOT NULL THEN\n            \
                 PERFORM set_config('{start}', low::text, true);\n            \
                 PERFORM set_config('{end}', (low + {size})::text, true);\n            \
                 EXECUTE {tag}\n{body}\n{tag};\n        \
                 END IF;\n        \
                 IF high IS NULL OR low + {size} > high THEN\n{diesel_row}\n{checksums}\n            \
                 COMMIT;\n            EXIT;\n        END IF;\n        \
                 COMMIT;\n        \
                 low := low + {size};\n        \
                 PERFORM pg_sleep({pause}); -- backfill_pause_ms\n    \
                 END LOOP;\nEND\n$batched$;\n"
            );
        }
        format!(
            "\n-- Apply {embedded}\n\
             -- Batched: the statement runs again and again, each time in a transaction of its own,\n\
             -- until it changes no row; that run records the migration.\n\
             DO $batched$\n\
             DECLARE\n    changed bigint;\n\
             BEGIN\n    LOOP\n        \
             PERFORM set_config('lock_timeout', {lock}, true); -- migration_lock_wait\n        \
             PERFORM set_config('statement_timeout', {statement}, true); -- backfill_statement_timeout\n        \
             EXECUTE {tag}\n{body}\n{tag};\n        \
             GET DIAGNOSTICS changed = ROW_COUNT;\n        \
             IF changed = 0 THEN\n{diesel_row}\n{checksums}\n        END IF;\n        \
             COMMIT;\n        \
             EXIT WHEN changed = 0;\n        \
             PERFORM pg_sleep({pause}); -- backfill_pause_ms\n    \
             END LOOP;\nEND\n$batched$;\n"
        )
    }
}

impl MigrationHarness<Pg> for Script {
    fn run_migration(
        &mut self,
        migration: &dyn Migration<Pg>,
    ) -> migration::Result<MigrationVersion<'static>> {
        self.step(migration, Direction::Up)
    }

    fn revert_migration(
        &mut self,
        migration: &dyn Migration<Pg>,
    ) -> migration::Result<MigrationVersion<'static>> {
        self.step(migration, Direction::Down)
    }

    fn applied_migrations(&mut self) -> migration::Result<Vec<MigrationVersion<'static>>> {
        Ok(self
            .applied
            .iter()
            .map(MigrationVersion::as_owned)
            .collect())
    }
}
