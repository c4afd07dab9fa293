//! The request pool and [`run`], the one call that runs a query on it. The pool is opened by the
//! start-up stage ([`crate::startup`]), once the schema is up to date.

mod direct;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::CacheSize;
use diesel::prelude::*;
use diesel::r2d2::{self as diesel_r2d2, ConnectionManager};
use rocket::tokio::sync::Semaphore;
use rocket::tokio::task::spawn_blocking;
use rocket::tokio::time::timeout;
use rocket_sync_db_pools::r2d2::{self, ManageConnection};

use crate::settings::{PreparedStatements, Settings};

/// The request pool: r2d2-pooled `PgConnection`s (rocket_sync_db_pools' r2d2, configured by its
/// `Config`, `[default.databases.students]`), driven by [`run`].
///
/// rocket_sync_db_pools' own `Connection` guard crosses to a blocking thread three times per
/// request (checkout, the query, and the return in `Drop`) and its pool is private, so the service
/// builds the r2d2 pool from the settings and hands it out itself, once per request.
pub struct Pool {
    connections: r2d2::Pool<PgManager>,
    /// One per connection: a request waits for one here, in async code, holding no thread.
    permits: Arc<Semaphore>,
    timeout: Duration,
    /// Requests waiting for a permit now, and those that gave up after `timeout`, for /metrics.
    waiting: AtomicUsize,
    timeouts: AtomicU64,
}

/// What the pool is doing, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: u32,
    pub waiting: usize,
    pub timeouts: u64,
}

impl Pool {
    /// The pool `settings` describe. Opens `min_idle` connections, so call it on a blocking
    /// thread.
    pub fn open(settings: &Settings) -> Result<Pool, PoolError> {
        let pool = &settings.pool.config;
        let manager = PgManager {
            manager: ConnectionManager::new(&pool.url),
            statements: settings.service.prepared_statements,
            targets: direct::targets(&pool.url),
        };
        let connections = r2d2::Pool::builder()
            .max_size(pool.pool_size)
            .min_idle(Some(settings.pool.min_idle.min(pool.pool_size)))
            .test_on_check_out(false)
            .connection_timeout(settings.pool.timeout())
            .build(manager)?;
        let threads = settings.rocket.max_blocking;
        if threads < pool.pool_size as usize {
            log::warn!(
                "max_blocking = {threads} is below pool_size = {}: requests holding a connection \
                 will queue for a thread; set them equal",
                pool.pool_size
            );
        }
        Ok(Pool {
            connections,
            permits: Arc::new(Semaphore::new(pool.pool_size as usize)),
            timeout: settings.pool.timeout(),
            waiting: AtomicUsize::new(0),
            timeouts: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.connections.state();
        PoolStats {
            open: state.connections,
            idle: state.idle_connections,
            waiting: self.waiting.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

/// Counts a request as waiting for a connection until it is dropped: when the wait ends, or
/// when the request is abandoned (its client went away) while waiting.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing connections talks to the server: not on an async worker.
        let connections = self.connections.clone();
        if let Ok(runtime) = rocket::tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || drop(connections));
        }
    }
}

/// Why the pool could not be built: r2d2 could not open its first `min_idle` connections in time.
pub type PoolError = r2d2::Error;

/// Why [`run`] produced no result.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No pooled connection came within the pool's `timeout`: the database is down or every
    /// connection is busy. Logged where it happens.
    #[error("no database connection became available within the pool timeout")]
    NoConnection,
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Runs `query` on a pooled connection. Call it only once a request's input is valid, so that bad
/// input and slow uploads never hold a connection.
///
/// The wait for a connection is async (a permit per connection, up to the pool timeout); then
/// one blocking task checks a connection out, runs the query, marks the connection broken if it
/// failed at the connection level (the server restarted, say) so r2d2 drops it, and returns it
/// to the pool before the permit goes back: one thread hand-off per request.
pub async fn run<T, F>(pool: &Pool, query: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
{
    let deadline = Instant::now() + pool.timeout;
    let waiting = Waiting::start(&pool.waiting);
    let permit = timeout(pool.timeout, pool.permits.clone().acquire_owned()).await;
    drop(waiting);
    let permit = match permit {
        Ok(Ok(permit)) => permit,
        _ => {
            pool.timeouts.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "every database connection stayed busy for {:?}",
                pool.timeout
            );
            return Err(DbError::NoConnection);
        }
    };
    let connections = pool.connections.clone();
    let task = spawn_blocking(move || {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut conn = connections.get_timeout(left).map_err(|err| {
            log::error!("cannot get a database connection: {err}");
            DbError::NoConnection
        })?;
        let result = query(&mut conn.conn);
        if let Err(err) = &result {
            conn.broken = is_connection_unusable(err);
            explain_a_pooler_without_prepared_statements(err);
        }
        drop(conn);
        drop(permit);
        Ok(result?)
    });
    match task.await {
        Ok(result) => {
            if let Err(DbError::NoConnection) = result {
                pool.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            result
        }
        // A panicking query panics the handler, which Rocket answers with a 500.
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Logs, once per process, what to do when `err` says that a transaction pooler without
/// prepared-statement support stands between the pool and PostgreSQL: a statement diesel
/// prepared on this connection is unknown (SQLSTATE 26000), or its name is taken (42P05), because
/// the pooler ran it on another server connection. diesel does not expose the SQLSTATE, so its
/// statement name, `__diesel_stmt_<n>` in both messages and never translated, tells them apart.
/// The request itself still fails with the opaque 500 of any unexpected error.
fn explain_a_pooler_without_prepared_statements(err: &diesel::result::Error) {
    static EXPLAINED: AtomicBool = AtomicBool::new(false);
    let diesel::result::Error::DatabaseError(_, info) = err else {
        return;
    };
    if info.message().contains("\"__diesel_stmt_") && !EXPLAINED.swap(true, Ordering::Relaxed) {
        log::error!(
            "the database refused a prepared statement of this connection ({}): a transaction \
             pooler without prepared-statement support is in front of PostgreSQL. Set \
             `prepared_statements = \"auto\"` (the default) or false, or run PgBouncer 1.21 or \
             later with max_prepared_statements above 0",
            info.message()
        );
    }
}

/// Whether `err` means the connection can no longer do its job, as opposed to a query that
/// failed on a healthy connection: the connection is gone (the server restarted or went away),
/// or its server no longer takes writes (25006: a primary demoted in a failover, which keeps
/// its sessions). Either way the pool drops it, and the next request opens one to wherever the
/// address now leads.
pub fn is_connection_unusable(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        err,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        ) | Error::BrokenTransactionManager
    )
}

/// A `PgConnection` as the pool holds it.
///
/// The stock pool of rocket_sync_db_pools checks every connection with `SELECT 1` before handing
/// it out: a second round trip per request, which profiling showed to be the largest cost of a
/// small query. Here a connection is trusted until a query on it fails at the connection level,
/// which marks it broken so the pool drops it and the next request gets a fresh one.
pub struct PgConn {
    conn: PgConnection,
    broken: bool,
}

/// diesel's r2d2 manager, handing out [`PgConn`]s with or without diesel's statement cache.
pub struct PgManager {
    manager: ConnectionManager<PgConnection>,
    statements: PreparedStatements,
    /// Where the URL says PostgreSQL is, for [`PreparedStatements::Auto`].
    targets: Option<Vec<(String, u16)>>,
}

impl PgManager {
    /// Whether `conn` keeps diesel's prepared statements, as the setting says; with `auto`, as
    /// the server says it was reached.
    fn keeps_statements(&self, conn: &mut PgConnection) -> QueryResult<bool> {
        let keep = match self.statements {
            PreparedStatements::On => return Ok(true),
            PreparedStatements::Off => return Ok(false),
            PreparedStatements::Auto => {
                let reached = direct::reached(conn)?;
                let keep = direct::is_direct(reached, self.targets.as_deref());
                explain_auto(keep, reached);
                keep
            }
        };
        Ok(keep)
    }
}

/// Logs what `auto` chose, when it first chooses and whenever it chooses otherwise.
fn explain_auto(keep: bool, reached: Option<(std::net::IpAddr, u16)>) {
    static LAST: AtomicU8 = AtomicU8::new(0);
    if LAST.swap(1 + u8::from(keep), Ordering::Relaxed) == 1 + u8::from(keep) {
        return;
    }
    let at = reached.map_or("a Unix socket".to_owned(), |(addr, port)| {
        format!("{addr}:{port}")
    });
    match keep {
        true => log::info!(
            "prepared statements kept: PostgreSQL was reached directly, at {at}, which the URL names"
        ),
        false => log::info!(
            "prepared statements off: PostgreSQL was reached at {at}, which the URL does not name, \
             so a pooler may be in between (prepared_statements = \"auto\"). Behind PgBouncer \
             1.21 or later with max_prepared_statements above 0, or a TCP proxy, set \
             prepared_statements = true"
        ),
    }
}

impl ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = diesel_r2d2::Error;

    fn connect(&self) -> Result<PgConn, Self::Error> {
        let mut conn = self.manager.connect()?;
        let keep = self
            .keeps_statements(&mut conn)
            .map_err(diesel_r2d2::Error::QueryError)?;
        conn.set_prepared_statement_cache_size(match keep {
            true => CacheSize::Unbounded,
            false => CacheSize::Disabled,
        });
        Ok(PgConn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), Self::Error> {
        self.manager.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || self.manager.has_broken(&mut conn.conn)
    }
}
