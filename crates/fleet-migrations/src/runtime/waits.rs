//! Lock waits of migrations: short, retried, and named.
//!
//! An `ALTER TABLE` waiting for its lock (behind a long transaction, say) makes every later
//! request on that table queue behind it, so a migration that waits long stalls all traffic.
//! Each attempt of a transactional migration therefore waits at most `migration_lock_wait`
//! (`SET LOCAL lock_timeout`), and when that runs out the attempt is rolled back, traffic flows
//! again, and the migration is tried again after a jittered, growing pause, until
//! `migration_lock_budget` is spent. While an attempt runs, a second connection watches it with
//! `pg_blocking_pids`, so that each failed attempt names the session in its way.

use std::error::Error as StdError;
use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Nullable, Text};
use rand::Rng;

/// What the migrator waits for, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// For another process's migrations to finish (the migration lock).
    pub migration_lock: Duration,
    /// Per attempt, for a table lock.
    pub table_lock: Duration,
    /// For table locks over all of a migration's attempts (of each batch, for a batched one).
    pub budget: Duration,
    /// Between two batches of a batched migration, to let traffic through.
    pub batch_pause: Duration,
    /// The longest one batch may run (`statement_timeout`).
    pub batch_statement: Duration,
}

impl Default for Waits {
    /// Five minutes for another process's migrations; 1 s per lock attempt within 60 s in all
    /// (pgroll waits 500 ms an attempt); 50 ms between batches, 10 s for one.
    fn default() -> Self {
        Waits {
            migration_lock: Duration::from_secs(300),
            table_lock: Duration::from_secs(1),
            budget: Duration::from_secs(60),
            batch_pause: Duration::from_millis(50),
            batch_statement: Duration::from_secs(10),
        }
    }
}

/// `lock_timeout` as a SQL literal.
pub fn lock_timeout_literal(wait: Duration) -> String {
    format!("'{}ms'", wait.as_millis().max(1))
}

/// The pause before attempt `attempt + 1`: 200 ms doubled per attempt up to 5 s, then a random
/// part of it kept, so that replicas retrying together spread out.
pub fn backoff(attempt: u32) -> Duration {
    let full = Duration::from_millis(200).saturating_mul(1 << attempt.min(5).saturating_sub(1));
    let full = full.min(Duration::from_secs(5));
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// Whether `err` is PostgreSQL's `lock_not_available` (55P03) of a `lock_timeout`. diesel maps
/// that SQLSTATE to no error kind and gives no access to the code, so its message is what tells;
/// it is the server's English text, as long as `lc_messages` is not set to another language.
pub fn is_lock_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(diesel::result::Error::DatabaseError(_, info)) =
            err.downcast_ref::<diesel::result::Error>()
        {
            return info.message().contains("lock timeout");
        }
        source = err.source();
    }
    err.to_string()
        .contains("canceling statement due to lock timeout")
}

/// A session in a migration's way, as `pg_stat_activity` shows it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Blocker {
    #[diesel(sql_type = Integer)]
    pub pid: i32,
    #[diesel(sql_type = Text)]
    pub state: String,
    /// Seconds since its transaction (or, outside one, its query) began.
    #[diesel(sql_type = Double)]
    pub running: f64,
    /// The start of its current or last query.
    #[diesel(sql_type = Text)]
    pub query: String,
    /// What the migration waited for: the relation (or lock type) and the mode.
    #[diesel(sql_type = Nullable<Text>)]
    pub wanted: Option<String>,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(wanted) = &self.wanted {
            write!(f, "waiting for {wanted}, ")?;
        }
        write!(
            f,
            "blocked by pid {} ({} for {:.1} s, query: {:?})",
            self.pid, self.state, self.running, self.query
        )
    }
}

/// The sessions `pid` waits for, oldest transaction first.
fn blockers(conn: &mut PgConnection, pid: i32) -> QueryResult<Vec<Blocker>> {
    diesel::sql_query(
        "SELECT b.pid, coalesce(b.state, 'unknown') AS state, \
                coalesce(extract(epoch FROM now() - coalesce(b.xact_start, b.query_start)), 0) \
                    ::float8 AS running, \
                left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 80) AS query, \
                (SELECT coalesce(l.relation::regclass::text, l.locktype) || ' ' || l.mode \
                   FROM pg_locks l WHERE l.pid = $1 AND NOT l.granted LIMIT 1) AS wanted \
           FROM pg_stat_activity b \
          WHERE b.pid = ANY (pg_blocking_pids($1)) \
          ORDER BY b.xact_start NULLS LAST",
    )
    .bind::<Integer, _>(pid)
    .load(conn)
}

/// Runs `work` while `watcher` (another connection) polls which sessions block backend `pid`;
/// returns what `work` returned and the last blocker seen, if any. Polling, rather than asking
/// once the attempt failed, because the wait, and with it what caused it, ends with the failure.
pub fn watched<T>(
    watcher: Option<&mut PgConnection>,
    pid: i32,
    every: Duration,
    work: impl FnOnce() -> T,
) -> (T, Option<Blocker>) {
    let Some(conn) = watcher else {
        return (work(), None);
    };
    let (done, stop) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let watching = scope.spawn(move || {
            let mut last = None;
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                match blockers(conn, pid) {
                    Ok(found) => last = found.into_iter().next().or(last),
                    // Watching is a courtesy: the migration goes on without it.
                    Err(err) => {
                        log::debug!("could not look for blocking sessions: {err}");
                        break;
                    }
                }
            }
            last
        });
        let outcome = work();
        drop(done);
        (outcome, watching.join().unwrap_or(None))
    })
}

/// A migration that could not take its locks within the budget.
#[derive(Debug)]
pub struct LockBudgetSpent {
    pub attempts: u32,
    pub budget: Duration,
    pub blocker: Option<Blocker>,
    pub last: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for LockBudgetSpent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "it could not take its locks in {} over {} s (migration_lock_budget): ",
            match self.attempts {
                1 => "1 attempt".to_owned(),
                n => format!("{n} attempts"),
            },
            self.budget.as_secs()
        )?;
        match &self.blocker {
            Some(blocker) => write!(f, "{blocker}")?,
            None => write!(f, "{}", self.last)?,
        }
        write!(
            f,
            ". End that session (SELECT pg_terminate_backend(pid)) or wait until it is done, then \
             migrate again"
        )
    }
}

impl StdError for LockBudgetSpent {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.last.as_ref())
    }
}

/// A non-transactional migration whose one wait ran out, with the session in its way.
#[derive(Debug)]
pub struct Blocked {
    pub blocker: Blocker,
    pub last: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.last, self.blocker)
    }
}

impl StdError for Blocked {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.last.as_ref())
    }
}

/// The watching connection, opened the first time a migration runs (a start with nothing to
/// apply opens none) and kept for the migrations after it.
pub struct Watcher {
    url: String,
    conn: Option<PgConnection>,
    unavailable: bool,
}

impl Watcher {
    pub fn new(url: &str) -> Self {
        Watcher {
            url: url.to_owned(),
            conn: None,
            unavailable: false,
        }
    }

    /// The connection; `None`, after one logged try, when it cannot be opened: the migrations
    /// then run unwatched, their failures still reported, just without the blocker's name.
    pub fn connection(&mut self) -> Option<&mut PgConnection> {
        if self.conn.is_none() && !self.unavailable {
            match PgConnection::establish(&self.url) {
                Ok(conn) => self.conn = Some(conn),
                Err(err) => {
                    log::warn!("cannot open a connection to watch for blocking sessions: {err}");
                    self.unavailable = true;
                }
            }
        }
        self.conn.as_mut()
    }
}

/// This session's backend, as `pg_blocking_pids` knows it.
pub fn backend_pid(conn: &mut PgConnection) -> QueryResult<i32> {
    diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()")).get_result(conn)
}

/// How often to look for a blocker: a few times per wait, so that even a short wait is seen.
pub fn poll_interval(wait: Duration) -> Duration {
    (wait / 4).clamp(Duration::from_millis(20), Duration::from_millis(100))
}
