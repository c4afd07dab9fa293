//! The database: the pool handlers ask for, the migrations compiled into the binary, and the
//! stage that brings the schema up to date before the pool opens and the first request is served.

use std::error::Error as StdError;

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use rocket::fairing::AdHoc;
use rocket::serde::Deserialize;
use rocket::{Build, Rocket};
use rocket_sync_db_pools::{ConnectionPool, database};

use crate::config::DATABASE;
use crate::error::ApiError;

/// Every folder under `migrations/`, compiled in; `build.rs` makes cargo rebuild when one changes.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pooled `PgConnection`. Handlers get one through [`connect`]; used as a request guard it fails
/// with 503 when no connection comes within the pool's `timeout`, and the JSON catcher answers.
#[database("students")]
pub struct Db(PgConnection);

/// A pooled connection, asked for only once a request has been validated, so that bad input and
/// slow uploads never hold one. Fails with a 503 when none comes within the pool timeout.
pub async fn connect(pool: &Pool) -> Result<Db, ApiError> {
    pool.get().await.map(Db).ok_or(ApiError::NoConnection)
}

/// The pool as Rocket manages it; handlers take it as `&State<Pool>`.
pub type Pool = ConnectionPool<Db, PgConnection>;

/// The pool and the startup migrations, attached together so no handler can run before the
/// schema it queries exists.
pub fn stage() -> AdHoc {
    stage_with(MIGRATIONS)
}

/// [`stage`] with another set of migrations, for tests that need a migration to fail.
pub fn stage_with(migrations: EmbeddedMigrations) -> AdHoc {
    // The pool is attached only once migrations succeeded: a failed start then reports one
    // cause, instead of also waiting out the pool's timeout against a database known to be bad.
    AdHoc::try_on_ignite("Startup migrations", move |rocket| async move {
        let rocket = migrate_at_ignition(rocket, migrations).await?;
        Ok(rocket.attach(Db::fairing()))
    })
}

#[derive(Debug, Deserialize)]
#[serde(crate = "rocket::serde")]
struct MigrationSettings {
    /// Deployments that migrate in a separate step (a release job, `diesel migration run`) turn
    /// this off with `migrate_on_start = false` or `ROCKET_MIGRATE_ON_START=false`.
    #[serde(default = "enabled")]
    migrate_on_start: bool,
}

fn enabled() -> bool {
    true
}

async fn migrate_at_ignition(
    rocket: Rocket<Build>,
    migrations: EmbeddedMigrations,
) -> Result<Rocket<Build>, Rocket<Build>> {
    let settings: MigrationSettings = match rocket.figment().extract() {
        Ok(settings) => settings,
        Err(err) => {
            log::error!("invalid `migrate_on_start` setting: {err}");
            return Err(rocket);
        }
    };
    if !settings.migrate_on_start {
        log::info!("migrate_on_start is off: not applying migrations");
        return Ok(rocket);
    }
    let url: String = match rocket
        .figment()
        .extract_inner(&format!("databases.{DATABASE}.url"))
    {
        Ok(url) => url,
        Err(err) => {
            log::error!("no database url configured (set DATABASE_URL): {err}");
            return Err(rocket);
        }
    };

    // Migrations run on a connection of their own, not one from the request pool, and on a
    // blocking thread because diesel is synchronous.
    let outcome = rocket::tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url).map_err(MigrateError::Connect)?;
        run_pending_migrations(&mut conn, migrations)
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
            log::error!("{err}");
            Err(rocket)
        }
        Err(err) => {
            log::error!("the migration task did not finish: {err}");
            Err(rocket)
        }
    }
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database to migrate it: {0}")]
    Connect(#[source] ConnectionError),
    #[error("cannot read which migrations are applied: {0}")]
    Inspect(#[source] Box<dyn StdError + Send + Sync>),
    #[error(
        "migration {name} failed, so the service will not start: {source}. \
         Earlier migrations stay applied; {name} itself was rolled back unless it runs outside a transaction"
    )]
    Failed {
        name: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Applies every pending migration in version order, each in its own transaction (unless its
/// `metadata.toml` says otherwise), and returns the names of those it applied. Stops at the first
/// failure and names the migration that failed.
pub fn run_pending_migrations(
    conn: &mut PgConnection,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, MigrateError> {
    let pending = MigrationHarness::<Pg>::pending_migrations(conn, migrations)
        .map_err(MigrateError::Inspect)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in pending {
        let name = migration.name().to_string();
        conn.run_migration(&*migration)
            .map_err(|source| MigrateError::Failed {
                name: name.clone(),
                source,
            })?;
        applied.push(name);
    }
    Ok(applied)
}

#[derive(QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Names of the embedded migrations the database has not applied, oldest first. Reads diesel's
/// bookkeeping table without creating it (the harness's own listing would), so a readiness probe
/// never writes.
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
    let embedded = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(diesel::result::Error::QueryBuilderError)?;
    Ok(embedded
        .iter()
        .map(|migration| migration.name())
        .filter(|name| !applied.contains(&name.version().to_string()))
        .map(|name| name.to_string())
        .collect())
}
