//! The database: the pool handlers ask for, and the stage that brings the schema up to date
//! (under the migration lock, see [`crate::migrate`]) before the pool opens and the first request
//! is served.

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use rocket::fairing::AdHoc;
use rocket::{Build, Rocket};
use rocket_sync_db_pools::{ConnectionPool, database};

use crate::config;
use crate::error::ApiError;
use crate::migrate::{self, MigrationSet, Migrator};

/// A pooled `PgConnection`. Handlers get one through [`connect`]; used as a request guard it fails
/// with 503 when no connection comes within the pool's `timeout`, and the JSON catcher answers.
#[database("students")]
pub struct Db(PgConnection);

/// The pool as Rocket manages it; handlers take it as `&State<Pool>`.
pub type Pool = ConnectionPool<Db, PgConnection>;

/// A pooled connection, asked for only once a request has been validated, so that bad input and
/// slow uploads never hold one. Fails with a 503 when none comes within the pool timeout.
pub async fn connect(pool: &Pool) -> Result<Db, ApiError> {
    pool.get().await.map(Db).ok_or(ApiError::NoConnection)
}

/// The pool and the startup migrations, attached together so no handler can run before the
/// schema it queries exists.
pub fn stage() -> AdHoc {
    stage_with(migrate::MIGRATIONS)
}

/// [`stage`] with another set of migrations, for tests that need a migration to fail.
pub fn stage_with(migrations: MigrationSet) -> AdHoc {
    // The pool is attached only once migrations succeeded: a failed start then reports one
    // cause, instead of also waiting out the pool's timeout against a database known to be bad.
    AdHoc::try_on_ignite("Startup migrations", move |rocket| async move {
        let rocket = migrate_at_ignition(rocket, migrations).await?;
        Ok(rocket.attach(Db::fairing()))
    })
}

async fn migrate_at_ignition(
    rocket: Rocket<Build>,
    migrations: MigrationSet,
) -> Result<Rocket<Build>, Rocket<Build>> {
    let settings = match config::migration_settings(rocket.figment()) {
        Ok(settings) => settings,
        Err(err) => {
            log::error!("invalid migration settings: {err}");
            return Err(rocket);
        }
    };
    if !settings.migrate_on_start {
        log::info!("migrate_on_start is off: not applying migrations");
        return Ok(rocket);
    }
    let url = match config::database_url(rocket.figment()) {
        Ok(url) => url,
        Err(err) => {
            log::error!("no database url configured (set DATABASE_URL): {err}");
            return Err(rocket);
        }
    };

    // Diesel is synchronous: migrate on a blocking thread.
    let outcome = rocket::tokio::task::spawn_blocking(move || {
        Migrator::connect(&url, migrations, settings.lock_timeout())?.run(None)
    })
    .await;

    match outcome {
        Ok(Ok(applied)) if applied.is_empty() => {
            log::info!("database schema is up to date: no pending migrations");
            Ok(rocket)
        }
        Ok(Ok(applied)) => {
            for name in &applied {
                log::info!("applied migration {name}");
            }
            log::info!("applied {} pending migration(s)", applied.len());
            Ok(rocket)
        }
        Ok(Err(err)) => {
            log::error!("{err}; the service will not start");
            Err(rocket)
        }
        Err(err) => {
            log::error!("the migration task did not finish: {err}");
            Err(rocket)
        }
    }
}

#[derive(QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Names of the embedded migrations the database has not applied, oldest first. Reads diesel's
/// bookkeeping table without creating it (the harness's own listing would) and without the
/// migration lock, so a readiness probe never writes and never waits.
pub fn pending_migrations(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    let bookkeeping_exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL",
    ))
    .get_result(conn)?;
    let applied: Vec<String> = if bookkeeping_exists {
        diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations")
            .load::<AppliedVersion>(conn)?
            .into_iter()
            .map(|row| row.version)
            .collect()
    } else {
        Vec::new()
    };
    let embedded = MigrationSource::<Pg>::migrations(&migrate::EMBEDDED)
        .map_err(diesel::result::Error::QueryBuilderError)?;
    Ok(embedded
        .iter()
        .map(|migration| migration.name())
        .filter(|name| !applied.contains(&name.version().to_string()))
        .map(|name| name.to_string())
        .collect())
}
