//! diesel's `MigrationHarness` over a connection that holds the migration lock: [`Harness`]
//! applies each migration, retrying short lock waits and running a batched one batch by batch,
//! and records (or forgets) its checksums in the same transaction as diesel's own bookkeeping
//! row.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::migration::{self, Migration, MigrationVersion};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;

use super::bookkeeping::{self, Recording};
use super::indexes;
use super::plan::embedded;
use super::progress::{Progress, rows_left};
use super::source::{Batch, EmbeddedMigration, KeyRange, Migrations};
use super::targets::Direction;
use super::waits::{self, Blocked, LockBudgetSpent, Waits, Watcher};

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

    /// `up.sql` again and again, each run in its own transaction, until a run changes no row, or
    /// with a key range until the range is walked; the last run executes `record` in its
    /// transaction too.
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
        // The high-water mark: read once, so rows written from now on never extend the walk.
        let mut slices = match batch.key_range {
            Some(range) => Some(Slices::read(self.conn, embedded, range)?),
            None => None,
        };
        loop {
            let slice = slices.as_mut().map(Slices::next);
            let (changed, last) = self.retried(embedded, |conn| {
                conn.batch_execute(&statement_timeout)?;
                let changed = match slice {
                    Some(Slice::Keys { start, end, .. }) => {
                        conn.batch_execute(&format!(
                            "SELECT set_config('{}', '{start}', true), set_config('{}', '{end}', true)",
                            KeyRange::START,
                            KeyRange::END
                        ))?;
                        diesel::sql_query(embedded.up).execute(conn)?
                    }
                    Some(Slice::Done) => 0,
                    None => diesel::sql_query(embedded.up).execute(conn)?,
                };
                let last = match slice {
                    Some(slice) => slice.is_last(),
                    None => changed == 0,
                };
                if last {
                    conn.batch_execute(record)?;
                }
                Ok((changed, last))
            })?;
            if changed > 0 {
                progress.batch(changed);
            }
            if last {
                progress.done();
                return Ok(());
            }
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
        let builds = match direction {
            Direction::Up => indexes::built_concurrently(embedded.up),
            Direction::Down => Vec::new(),
        };
        let conn = &mut *self.conn;
        let (outcome, blocker) = waits::watched(
            self.watcher.connection(),
            pid,
            waits::poll_interval(wait),
            || {
                indexes::drop_invalid(conn, embedded.name, &builds)?;
                run_step(conn, migration, direction, &checksums)
            },
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

/// The slices of a key range a batched migration walks, read once when it starts.
struct Slices {
    next: i64,
    high: Option<i64>,
    size: i64,
}

/// One batch of a key range: the keys from `start` up to (not including) `end`; or nothing, when
/// the table was empty when the migration started.
#[derive(Debug, Clone, Copy)]
enum Slice {
    Keys { start: i64, end: i64, last: bool },
    Done,
}

impl Slice {
    fn is_last(self) -> bool {
        match self {
            Slice::Keys { last, .. } => last,
            Slice::Done => true,
        }
    }
}

impl Slices {
    fn read(
        conn: &mut PgConnection,
        embedded: &EmbeddedMigration,
        range: KeyRange,
    ) -> migration::Result<Slices> {
        #[derive(QueryableByName)]
        struct Range {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            low: Option<i64>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            high: Option<i64>,
        }
        let sql = format!(
            "SELECT low::bigint, high::bigint FROM ({}) AS range (low, high)",
            range.query.trim().trim_end_matches(';')
        );
        let Range { low, high } = diesel::sql_query(sql).get_result::<Range>(conn)?;
        if let (Some(low), Some(high)) = (low, high) {
            log::info!(
                "migration {embedded}: keys {low} to {high}, in batches of {}",
                range.batch_size
            );
        }
        Ok(Slices {
            next: low.unwrap_or(0),
            high: low.and(high),
            size: i64::try_from(range.batch_size).unwrap_or(i64::MAX),
        })
    }

    fn next(&mut self) -> Slice {
        let Some(high) = self.high else {
            return Slice::Done;
        };
        let start = self.next;
        let end = start.saturating_add(self.size);
        self.next = end;
        Slice::Keys {
            start,
            end,
            last: end > high,
        }
    }
}
