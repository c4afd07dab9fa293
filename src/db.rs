//! The database: the pool handlers ask for, and the stage that brings the schema up to date
//! (under the migration lock, see [`crate::migrate`]) before the pool opens and the first request
//! is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::r2d2::{self as diesel_r2d2, ConnectionManager};
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::tokio::sync::Semaphore;
use rocket::tokio::task::spawn_blocking;
use rocket::tokio::time::timeout;
use rocket::{Build, Rocket};
use rocket_sync_db_pools::r2d2::{self, ManageConnection};
use rocket_sync_db_pools::{PoolResult, Poolable};

use crate::config;
use crate::migrate::{self, Migrations, Migrator};

/// The request pool: rocket_sync_db_pools' configuration (`[default.databases.students]`) and
/// `Poolable`, r2d2-pooled `PgConnection`s, driven by [`run`].
///
/// rocket_sync_db_pools' own `Connection` guard crosses to a blocking thread three times per
/// request (checkout, the query, and the return in `Drop`) and its pool is private, so the service
/// keeps the r2d2 pool that [`Poolable::pool`] builds and hands it out itself, once per request.
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
    /// The pool `Rocket.toml` configures, as rocket_sync_db_pools reads it. Opens `min_idle`
    /// connections, so call it on a blocking thread.
    fn from_config(rocket: &Rocket<Build>) -> Result<Pool, String> {
        let config = rocket_sync_db_pools::Config::from(config::DATABASE, rocket)
            .map_err(|err| format!("invalid database configuration: {err}"))?;
        let connections = PgConn::pool(config::DATABASE, rocket)
            .map_err(|err| format!("cannot build the connection pool: {err:?}"))?;
        let threads: usize = rocket
            .figment()
            .extract_inner("max_blocking")
            .unwrap_or(512);
        if threads < config.pool_size as usize {
            log::warn!(
                "max_blocking = {threads} is below pool_size = {}: requests holding a connection \
                 will queue for a thread; set them equal",
                config.pool_size
            );
        }
        Ok(Pool {
            connections,
            permits: Arc::new(Semaphore::new(config.pool_size as usize)),
            timeout: Duration::from_secs(config.timeout.into()),
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
        if let Err(err) = &result
            && is_connection_lost(err)
        {
            conn.broken = true;
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

/// Whether `err` means the connection itself is gone (the server restarted or went away), as
/// opposed to a query that failed on a healthy connection.
pub fn is_connection_lost(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        err,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
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

/// diesel's r2d2 manager, handing out [`PgConn`]s.
pub struct PgManager(ConnectionManager<PgConnection>);

impl ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = diesel_r2d2::Error;

    fn connect(&self) -> Result<PgConn, Self::Error> {
        self.0.connect().map(|conn| PgConn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), Self::Error> {
        self.0.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || self.0.has_broken(&mut conn.conn)
    }
}

impl Poolable for PgConn {
    type Manager = PgManager;
    type Error = std::convert::Infallible;

    fn pool(db_name: &str, rocket: &Rocket<Build>) -> PoolResult<Self> {
        let config = rocket_sync_db_pools::Config::from(db_name, rocket)?;
        // Opening every connection up front would add each one's authentication to the start;
        // the pool grows to pool_size under load instead.
        let min_idle: Option<u32> = rocket
            .figment()
            .extract_inner(&format!("databases.{db_name}.min_idle"))
            .ok();
        Ok(r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(min_idle.unwrap_or(1).min(config.pool_size)))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(config.timeout.into()))
            .build(PgManager(ConnectionManager::new(&config.url)))?)
    }
}

/// The pool and the startup migrations, attached together so no handler can run before the
/// schema it queries exists.
pub fn stage() -> AdHoc {
    stage_with(migrate::MIGRATIONS)
}

/// [`stage`] with another set of migrations, for tests that need a migration to fail.
pub fn stage_with(migrations: Migrations) -> AdHoc {
    AdHoc::try_on_ignite("Database", move |rocket| async move {
        // The migrations run on a direct connection of their own while the pool opens its first
        // connection: each costs a SCRAM handshake, and this way a start waits for one.
        let migrating =
            rocket::tokio::spawn(migrate_at_ignition(rocket.figment().clone(), migrations));
        let (rocket, pool) = build_pool(rocket).await;
        if !migrating.await.unwrap_or(false) {
            // Already logged with its cause; the pool, if any, is dropped unused.
            return Err(rocket);
        }
        let (rocket, pool) = match pool {
            Ok(pool) => (rocket, Ok(pool)),
            // The database came up only while the migrations waited for it.
            Err(_) => build_pool(rocket).await,
        };
        match pool {
            Ok(pool) => Ok(rocket.manage(pool)),
            Err(err) => {
                log::error!("{err}");
                Err(rocket)
            }
        }
    })
}

async fn build_pool(rocket: Rocket<Build>) -> (Rocket<Build>, Result<Pool, String>) {
    spawn_blocking(move || {
        let pool = Pool::from_config(&rocket);
        (rocket, pool)
    })
    .await
    .expect("building the pool does not panic")
}

/// Waits for the database and applies pending migrations (unless `migrate_on_start` is off);
/// whether the service may start. Failures are logged with their cause.
async fn migrate_at_ignition(figment: Figment, migrations: Migrations) -> bool {
    let settings = match config::migration_settings(&figment) {
        Ok(settings) => settings,
        Err(err) => {
            log::error!("invalid migration settings: {err}");
            return false;
        }
    };
    let url = match config::database_url(&figment) {
        Ok(url) => url,
        Err(err) => {
            log::error!("no database url configured (set DATABASE_URL): {err}");
            return false;
        }
    };

    // Diesel is synchronous: connect and migrate on a blocking thread.
    let outcome = spawn_blocking(move || {
        let conn = wait_for_database(&url, settings.database_wait())
            .map_err(migrate::MigrateError::Connect)?;
        if !settings.migrate_on_start {
            return Ok(None);
        }
        Migrator::with_connection(conn, migrations, settings.lock_timeout())?
            .run(None, false)
            .map(Some)
    })
    .await;

    match outcome {
        Ok(Ok(None)) => {
            log::info!("migrate_on_start is off: not applying migrations");
            true
        }
        Ok(Ok(Some(applied))) if applied.is_empty() => {
            log::info!("database schema is up to date: no pending migrations");
            true
        }
        Ok(Ok(Some(applied))) => {
            log::info!("applied {} pending migration(s)", applied.len());
            true
        }
        Ok(Err(err)) => {
            log::error!("{err}; the service will not start");
            false
        }
        Err(err) => {
            log::error!("the migration task did not finish: {err}");
            false
        }
    }
}

/// Connects to `url`, retrying with backoff for up to `patience` while the database does not
/// answer (it is often still starting when the service does), and logging each failed attempt.
pub fn wait_for_database(url: &str, patience: Duration) -> Result<PgConnection, ConnectionError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match PgConnection::establish(url) {
            Ok(conn) => {
                if attempt > 1 {
                    log::info!("connected to the database on attempt {attempt}");
                }
                return Ok(conn);
            }
            Err(err) if started.elapsed() < patience => {
                // The last wait is cut short so the last attempt falls on the deadline.
                let wait = delay.min(patience.saturating_sub(started.elapsed()));
                log::warn!(
                    "database not reachable (attempt {attempt}, {:.1}s of {}s): {}; retrying in {}ms",
                    started.elapsed().as_secs_f32(),
                    patience.as_secs(),
                    migrate::one_line(&err.to_string()),
                    wait.as_millis()
                );
                std::thread::sleep(wait);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(err) => {
                log::error!(
                    "gave up on the database after {attempt} attempts in {:.1}s (database_wait = {}s)",
                    started.elapsed().as_secs_f32(),
                    patience.as_secs()
                );
                return Err(err);
            }
        }
    }
    unreachable!("the loop returns")
}
