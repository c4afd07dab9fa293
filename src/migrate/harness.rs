//! diesel's `MigrationHarness`, implemented twice: [`Harness`] applies each migration and records
//! (or forgets) its checksums in the same transaction as diesel's own bookkeeping row, and
//! [`Script`] appends what would run to a script for `migrate sql` instead. Either way diesel's
//! `pending_migrations`, `run_next_migration` and `revert_last_migration` choose what runs, through
//! [`apply`] and [`revert`].

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::migration::{self, CREATE_MIGRATIONS_TABLE, Migration, MigrationVersion};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{MigrationError, MigrationHarness};

use super::bookkeeping::{self, Recording};
use super::waits::{self, Blocked, LockBudgetSpent, Waits, Watcher};
use super::{
    ApplyTarget, Batch, Direction, EmbeddedMigration, MigrateError, Migrations, PostDeploy,
    RevertTarget,
};

fn find(set: Migrations, spec: &str) -> Result<&'static EmbeddedMigration, MigrateError> {
    set.find(spec)
        .ok_or_else(|| MigrateError::UnknownVersion(spec.to_owned()))
}

/// The migration diesel hands a harness, as this binary embeds it.
fn embedded(
    set: Migrations,
    migration: &dyn Migration<Pg>,
) -> Result<&'static EmbeddedMigration, MigrateError> {
    find(set, &migration.name().version().to_string())
}

/// Applies pending migrations of `set`, oldest first, all of them or through the target; with
/// `PostDeploy::Skip`, stops before the first post-deploy one, as diesel applies in order.
pub fn apply<H: MigrationHarness<Pg>>(
    harness: &mut H,
    set: Migrations,
    target: &ApplyTarget,
    post_deploy: PostDeploy,
) -> Result<Vec<&'static str>, MigrateError> {
    let last = match target {
        ApplyTarget::All => None,
        ApplyTarget::Through(spec) => Some(find(set, spec)?),
    };
    let mut targeted: Vec<&'static EmbeddedMigration> = (harness.pending_migrations(set))
        .map_err(MigrateError::Database)?
        .iter()
        .map(|migration| embedded(set, migration.as_ref()))
        .collect::<Result<_, _>>()?;
    // A database with nothing applied has no replica serving it, so no release for an earlier
    // release's contract steps to wait for: a first install applies them on its way to the
    // migrations the binary needs.
    let fresh = targeted.len() == set.0.len();
    if let Some(last) = last {
        targeted.retain(|migration| migration.version() <= last.version());
    }
    let mut applied = Vec::new();
    for (at, migration) in targeted.iter().enumerate() {
        if post_deploy == PostDeploy::Skip && migration.post_deploy {
            // Stopping here is the point, unless a migration this binary needs is behind it:
            // the rollout would then wait on /ready for good, so say why now.
            let behind = &targeted[at..];
            match behind.iter().find(|m| !m.post_deploy) {
                Some(_) if fresh => {}
                Some(needed) if last.is_none() => {
                    return Err(MigrateError::PostDeployFirst {
                        needed: needed.name,
                        blocking: (behind.iter().take_while(|m| m.post_deploy))
                            .map(|m| m.name)
                            .collect(),
                    });
                }
                _ => break,
            }
        }
        if let Err(source) = harness.run_next_migration(set) {
            return Err(MigrateError::Failed {
                name: migration.name,
                transactional: migration.run_in_transaction,
                source,
            });
        }
        applied.push(migration.name);
    }
    Ok(applied)
}

/// Reverts applied migrations, newest first, as `target` says.
pub fn revert<H: MigrationHarness<Pg>>(
    harness: &mut H,
    set: Migrations,
    target: &RevertTarget,
) -> Result<Vec<&'static str>, MigrateError> {
    let applied = harness
        .applied_migrations()
        .map_err(MigrateError::Database)?;
    let count = match target {
        RevertTarget::Last(n) => *n,
        RevertTarget::All => applied.len(),
        RevertTarget::To(spec) => {
            let keep = find(set, spec)?;
            let version = MigrationVersion::from(keep.version());
            if !applied.contains(&version) {
                return Err(MigrateError::NotApplied(keep.name));
            }
            (applied.iter())
                .take_while(|applied| **applied > version)
                .count()
        }
    };
    let mut reverted = Vec::new();
    for newest in applied.iter().take(count) {
        let name = find(set, &newest.to_string())?.name;
        if let Err(source) = harness.revert_last_migration(set) {
            return Err(MigrateError::RevertFailed { name, source });
        }
        reverted.push(name);
    }
    Ok(reverted)
}

/// What a batched migration's `remaining_rows` query says, before the first batch.
fn rows_left(conn: &mut PgConnection, query: &str) -> migration::Result<u64> {
    #[derive(QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let sql = format!(
        "SELECT ({})::bigint AS rows",
        query.trim().trim_end_matches(';')
    );
    let left = diesel::sql_query(sql).get_result::<Left>(conn)?;
    Ok(left.rows.max(0) as u64)
}

/// The progress log of a batched migration: rows so far, rows a second and, when the rows left
/// were counted first, about how long is left; at most once a second, and at the end.
struct Progress<'a> {
    migration: &'a EmbeddedMigration,
    total: Option<u64>,
    rows: u64,
    batches: u64,
    started: Instant,
    logged: Instant,
}

impl<'a> Progress<'a> {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(migration: &'a EmbeddedMigration, total: Option<u64>) -> Self {
        let now = Instant::now();
        if let Some(total) = total {
            log::info!(
                "migration {migration}: about {} rows to change",
                thousands(total)
            );
        }
        Progress {
            migration,
            total,
            rows: 0,
            batches: 0,
            started: now,
            logged: now,
        }
    }

    fn rate(&self) -> f64 {
        self.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    fn batch(&mut self, changed: usize) {
        self.rows += changed as u64;
        self.batches += 1;
        if self.logged.elapsed() < Self::EVERY {
            return;
        }
        self.logged = Instant::now();
        let rate = self.rate();
        let left = match self.total {
            Some(total) if rate > 0.0 => {
                let seconds = total.saturating_sub(self.rows) as f64 / rate;
                format!(", about {seconds:.0} s left")
            }
            _ => String::new(),
        };
        log::info!(
            "migration {}: {} rows changed in {} batches, {} rows a second{left}",
            self.migration,
            thousands(self.rows),
            self.batches,
            thousands(rate as u64)
        );
    }

    fn done(&self) {
        log::info!(
            "migration {}: no row left to change: {} rows in {} batches, {:.1} s, {} rows a second",
            self.migration,
            thousands(self.rows),
            self.batches,
            self.started.elapsed().as_secs_f64(),
            thousands(self.rate() as u64)
        );
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Applies and reverts for real, over a connection that holds the migration lock.
pub struct Harness<'a> {
    pub conn: &'a mut PgConnection,
    pub set: Migrations,
    pub waits: Waits,
    pub watcher: &'a mut Watcher,
}

/// Applies (or reverts) `migration` through diesel's own harness, then records (or forgets) its
/// checksums.
fn run_step(
    conn: &mut PgConnection,
    migration: &dyn Migration<Pg>,
    direction: Direction,
    checksums: &str,
) -> migration::Result<()> {
    match direction {
        Direction::Up => conn.run_migration(migration)?,
        Direction::Down => conn.revert_migration(migration)?,
    };
    // The checksum table is created (or given its newer columns) here, when a migration is
    // really applied or reverted, not each time diesel lists the applied ones.
    conn.batch_execute(&format!("{}\n{checksums}", bookkeeping::CREATE_CHECKSUMS))?;
    Ok(())
}

impl Harness<'_> {
    /// Applies (or reverts) `migration` and records (or forgets) its checksums.
    fn step(
        &mut self,
        migration: &dyn Migration<Pg>,
        direction: Direction,
    ) -> migration::Result<MigrationVersion<'static>> {
        let embedded = embedded(self.set, migration)?;
        let (doing, done) = match direction {
            Direction::Up => ("applying", "applied"),
            Direction::Down => ("reverting", "reverted"),
        };
        log::info!("{doing} migration {embedded}");
        let started = Instant::now();
        match (embedded.batch, direction, embedded.run_in_transaction) {
            (Some(batch), Direction::Up, _) => self.batched(embedded, batch)?,
            (_, _, true) => self.in_transaction(migration, embedded, direction)?,
            (_, _, false) => self.outside_transaction(migration, embedded, direction)?,
        }
        let took = started.elapsed().as_millis();
        log::info!("{done} migration {embedded} in {took} ms");
        Ok(migration.name().version().as_owned())
    }

    /// Each attempt is one transaction that waits at most `migration_lock_wait` for any lock; one
    /// that timed out is rolled back whole and tried again after a pause, until the budget is
    /// spent. In a transaction of its own, diesel's transaction around the migration becomes a
    /// savepoint: the checksums commit with diesel's row, or neither does.
    fn in_transaction(
        &mut self,
        migration: &dyn Migration<Pg>,
        embedded: &EmbeddedMigration,
        direction: Direction,
    ) -> migration::Result<()> {
        let checksums = bookkeeping::checksums_sql(embedded, direction);
        self.retried(embedded, |conn| {
            run_step(conn, migration, direction, &checksums)
        })
    }

    /// `body` in a transaction that waits at most `migration_lock_wait` for any lock, rolled back
    /// and run again after a pause while that runs out, until `migration_lock_budget` is spent;
    /// each attempt watched, so that a failed one names the session in its way.
    fn retried<T>(
        &mut self,
        embedded: &EmbeddedMigration,
        mut body: impl FnMut(&mut PgConnection) -> migration::Result<T>,
    ) -> migration::Result<T> {
        let Waits {
            table_lock, budget, ..
        } = self.waits;
        let set_wait = format!(
            "SET LOCAL lock_timeout = {}",
            waits::lock_timeout_literal(table_lock)
        );
        let pid = waits::backend_pid(self.conn)?;
        let first = Instant::now();
        for attempt in 1.. {
            let conn = &mut *self.conn;
            let (outcome, blocker) = waits::watched(
                self.watcher.connection(),
                pid,
                waits::poll_interval(table_lock),
                || {
                    conn.transaction(|conn| {
                        // First, so that the migration's own `SET LOCAL lock_timeout`, in the
                        // files applied before this setting existed, still wins.
                        conn.batch_execute(&set_wait)?;
                        body(conn)
                    })
                },
            );
            let err = match outcome {
                Ok(done) => return Ok(done),
                Err(err) if waits::is_lock_timeout(err.as_ref()) => err,
                Err(err) => return Err(err),
            };
            let spent = first.elapsed();
            if spent >= budget {
                return Err(Box::new(LockBudgetSpent {
                    attempts: attempt,
                    budget,
                    blocker,
                    last: err,
                }));
            }
            let pause = waits::backoff(attempt).min(budget - spent);
            let who = match &blocker {
                Some(blocker) => blocker.to_string(),
                None => "the session in its way had gone before it could be named".to_owned(),
            };
            log::warn!(
                "migration {embedded}: attempt {attempt} gave up waiting for a lock: {who}; rolled \
                 back so that traffic flows, trying again in {} ms ({:.1} s of the {} s \
                 migration_lock_budget spent)",
                pause.as_millis(),
                spent.as_secs_f32(),
                budget.as_secs()
            );
            std::thread::sleep(pause);
        }
        unreachable!("the loop returns")
    }

    /// A batched migration: `up.sql` again and again, until a run changes no row.
    ///
    /// diesel's harness runs a migration once, in one transaction or none, so this loop is the
    /// project's own. Each batch is one transaction, with the lock wait and its retries of any
    /// transactional migration and a `statement_timeout`, so no batch holds its row locks for
    /// long, and a pause between batches lets the requests that waited for them run. The batch
    /// that changes no row also writes diesel's row and the checksums, in its transaction: the
    /// migration is recorded only once no row is left, and a migrator stopped at any point
    /// (killed, its connection lost) leaves every finished batch committed and the migration
    /// pending, so the next `migrate run` goes on where it stopped.
    fn batched(&mut self, embedded: &EmbeddedMigration, batch: Batch) -> migration::Result<()> {
        let record = format!(
            "{}\n{}\n{}",
            bookkeeping::CREATE_CHECKSUMS,
            bookkeeping::diesel_sql(embedded, Direction::Up),
            bookkeeping::checksums_sql(embedded, Direction::Up)
        );
        self.batches(embedded, batch, &record)
    }

    /// A batched migration the diesel CLI applied: it ran one batch and wrote diesel's row, but
    /// the rows it left may still need changing. Its batches run on until a run changes none,
    /// which records its checksums as adopted; stopped before that, it stays unrecorded and the
    /// next command that migrates goes on.
    pub fn finish_adopted_batches(
        &mut self,
        embedded: &EmbeddedMigration,
        batch: Batch,
    ) -> migration::Result<()> {
        let record = format!(
            "{}\n{}",
            bookkeeping::CREATE_CHECKSUMS,
            bookkeeping::record_sql(embedded, Recording::Adopted)
        );
        self.batches(embedded, batch, &record)
    }

    /// `up.sql` again and again, each run in its own transaction, until a run changes no row;
    /// that run executes `record` in its transaction too.
    fn batches(
        &mut self,
        embedded: &EmbeddedMigration,
        batch: Batch,
        record: &str,
    ) -> migration::Result<()> {
        let statement_timeout = format!(
            "SET LOCAL statement_timeout = {}",
            waits::lock_timeout_literal(self.waits.batch_statement)
        );
        let remaining = match batch.remaining_rows {
            Some(query) => Some(rows_left(self.conn, query)?),
            None => None,
        };
        let mut progress = Progress::new(embedded, remaining);
        loop {
            let changed = self.retried(embedded, |conn| {
                conn.batch_execute(&statement_timeout)?;
                let changed = diesel::sql_query(embedded.up).execute(conn)?;
                if changed == 0 {
                    conn.batch_execute(record)?;
                }
                Ok(changed)
            })?;
            if changed == 0 {
                progress.done();
                return Ok(());
            }
            progress.batch(changed);
            std::thread::sleep(self.waits.batch_pause);
        }
    }

    /// A migration outside a transaction (`CREATE INDEX CONCURRENTLY`) cannot be retried: what
    /// it did before failing stays done. Its waits stall no traffic, since its locks let reads
    /// and writes through, so it gets one wait as long as the whole budget, and a failure names
    /// the session in its way.
    fn outside_transaction(
        &mut self,
        migration: &dyn Migration<Pg>,
        embedded: &EmbeddedMigration,
        direction: Direction,
    ) -> migration::Result<()> {
        let wait: Duration = self.waits.budget.max(self.waits.table_lock);
        let checksums = bookkeeping::checksums_sql(embedded, direction);
        let pid = waits::backend_pid(self.conn)?;
        self.conn.batch_execute(&format!(
            "SET lock_timeout = {}",
            waits::lock_timeout_literal(wait)
        ))?;
        let conn = &mut *self.conn;
        let (outcome, blocker) = waits::watched(
            self.watcher.connection(),
            pid,
            waits::poll_interval(wait),
            || run_step(conn, migration, direction, &checksums),
        );
        self.conn.batch_execute("RESET lock_timeout")?;
        match (outcome, blocker) {
            (Err(last), Some(blocker)) if waits::is_lock_timeout(last.as_ref()) => {
                Err(Box::new(Blocked { blocker, last }))
            }
            (outcome, _) => outcome,
        }
    }
}

impl MigrationHarness<Pg> for Harness<'_> {
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

    /// Newest first, as diesel's own harness lists them (diesel creates its table when missing).
    fn applied_migrations(&mut self) -> migration::Result<Vec<MigrationVersion<'static>>> {
        self.conn.applied_migrations()
    }
}

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

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn counts_are_logged_with_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }
}
