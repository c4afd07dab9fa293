//! The start-up stage, one step after another at ignition: read the settings, wait for the
//! database, migrate (under the migration lock, see [`crate::migrate`]), open the pool, install
//! the drain and the sweep of expired idempotency keys. Attached before the routes, so no handler
//! can run before the schema it queries exists.

use rocket::fairing::AdHoc;
use rocket::tokio::task::spawn_blocking;

use crate::db::{Pool, PoolError};
use crate::drain::{self, Draining};
use crate::idempotency;
use crate::migrate::{self, MIGRATIONS, MigrateError, Migrations, Started, Unready, Waits};
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
                    ))
                    .attach(idempotency::stage(settings.pool.config.url.clone())))
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
    let Started { applied, unready } = spawn_blocking(move || {
        let waits = Waits::from(&service);
        let patience = service.database_wait.into();
        migrate::on_start(
            &pool.config.url,
            migrations,
            waits,
            patience,
            service.migrate_on_start,
        )
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
