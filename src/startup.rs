//! The start-up stage, one step after another at ignition: read the settings, wait for the
//! database, migrate (under the migration lock, see [`crate::migrate`]), open the pool, install
//! the drain. Attached before the routes, so no handler can run before the schema it queries
//! exists.

use std::time::{Duration, Instant};

use diesel::connection::CacheSize;
use diesel::prelude::*;
use rocket::fairing::AdHoc;
use rocket::tokio::task::spawn_blocking;

use crate::db::{Pool, PoolError};
use crate::drain::{self, Draining};
use crate::migrate::{
    self, ApplyTarget, MIGRATIONS, MigrateError, Migrations, Migrator, Order, PostDeploy, Unready,
    Waits,
};
use crate::settings::Settings;

/// The stage, with the service's migrations.
pub fn stage(settings: Settings) -> AdHoc {
    stage_with(settings, MIGRATIONS)
}

/// [`stage`] with another set of migrations, for tests that need a migration to fail.
pub fn stage_with(settings: Settings, migrations: Migrations) -> AdHoc {
    AdHoc::try_on_ignite("Start-up", move |rocket| async move {
        match start(&settings, migrations).await {
            Ok(pool) => {
                let draining = Draining::default();
                Ok(rocket
                    .manage(pool)
                    .manage(draining.clone())
                    .attach(drain::on_sigterm(
                        draining,
                        settings.service.shutdown_drain.into(),
                    )))
            }
            Err(err) => {
                log::error!("{err}; the service will not start");
                Err(rocket)
            }
        }
    })
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The schema differs from the one the queries were compiled against.
    #[error("{0}")]
    Drift(Unready),
    #[error("the migration task did not finish: {0}")]
    Task(#[from] rocket::tokio::task::JoinError),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] PoolError),
}

/// Migrates, and opens the pool meanwhile: the pool, once the schema can be served.
async fn start(settings: &Settings, migrations: Migrations) -> Result<Pool, StartError> {
    // The migrations run on a direct connection of their own while the pool opens its first
    // connection: each costs a SCRAM handshake, and this way a start waits for one.
    let migrating = rocket::tokio::spawn(migrate(settings.clone(), migrations));
    let pool = open_pool(settings).await;
    migrating.await??;
    match pool {
        Ok(pool) => Ok(pool),
        // The database came up only while the migrations waited for it.
        Err(_) => Ok(open_pool(settings).await?),
    }
}

async fn open_pool(settings: &Settings) -> Result<Pool, PoolError> {
    let settings = settings.clone();
    spawn_blocking(move || Pool::open(&settings))
        .await
        .expect("opening the pool does not panic")
}

/// Waits for the database, applies pending migrations (unless `migrate_on_start` is off), then
/// checks that this binary can serve the schema. A binary whose migrations are pending (a
/// release's migration step still to run) or out of order starts, and `/ready` says why it is
/// not ready; one whose schema has drifted does not.
async fn migrate(settings: Settings, migrations: Migrations) -> Result<(), StartError> {
    let Settings { service, pool, .. } = settings;
    // Diesel is synchronous: connect and migrate on a blocking thread.
    let (applied, unready) = spawn_blocking(move || -> Result<_, MigrateError> {
        let url = &pool.config.url;
        let mut conn =
            wait_for_database(url, service.database_wait.into()).map_err(MigrateError::Connect)?;
        // The pool's URL may lead through a transaction pooler, which mixes named statements
        // of different clients, whatever `prepared_statements` says; and this connection runs
        // each of its few statements once, so a cache would buy nothing.
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        if !service.migrate_on_start {
            let unready = migrate::readiness(&mut conn, migrations)?;
            return Ok((None, unready));
        }
        let mut migrator = Migrator::with_connection(conn, url, migrations, Waits::from(&service))?;
        let applied = migrator.run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)?;
        Ok((Some(applied), migrator.readiness()?))
    })
    .await??;
    match applied.map(|applied| applied.len()) {
        None => log::info!("migrate_on_start is off: not applying migrations"),
        Some(0) => log::info!("database schema is up to date: no pending migrations"),
        Some(n) => log::info!("applied {n} pending migration(s)"),
    }
    match unready {
        None => Ok(()),
        Some(drift @ Unready::Drift(_)) => Err(StartError::Drift(drift)),
        Some(unready) => {
            log::warn!("{unready}; serving, and /ready answers 503 until that changes");
            Ok(())
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
