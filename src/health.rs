//! `/health` and `/ready`, the probes of load balancers and orchestrators.

use rocket::fairing::AdHoc;
use rocket::serde::Serialize;
use rocket::serde::json::Json;
use rocket::{State, get, routes};
use utoipa::ToSchema;

use crate::db::{self, Pool};
use crate::drain::Draining;
use crate::http::{ApiError, ErrorBody};
use crate::migrate::{self, MIGRATIONS};

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Probes", |rocket| async {
        rocket.mount("/", routes![health, ready])
    })
}

// What a probe answers when all is well, `{"status": "ok"}` or `{"status": "ready"}`: a `//`
// comment, because a doc comment would become its description in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
#[schema(as = Status)]
pub struct ProbeAnswer {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process serves requests. Touches no database, so a database outage never gets
/// a healthy process restarted.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The process is up", body = ProbeAnswer))
)]
#[get("/health")]
pub fn health() -> Json<ProbeAnswer> {
    Json(ProbeAnswer { status: "ok" })
}

/// Readiness: the instance is not shutting down, the database answers, its schema has every
/// migration this binary embeds (post-deploy ones aside) with none pending out of order, and
/// every column this binary queries is there as `src/schema.rs` declares it.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = ProbeAnswer),
        (status = 503, description = "The database is unreachable, migrations this binary needs are pending, a pending migration is out of order, the live schema has drifted from this binary's, or the instance is shutting down (the detail says which)", body = ErrorBody,
            headers(("Retry-After" = i32, description = "Seconds to wait"))),
    )
)]
#[get("/ready")]
pub async fn ready(
    pool: &State<Pool>,
    draining: &State<Draining>,
) -> Result<Json<ProbeAnswer>, ApiError> {
    if draining.is_draining() {
        return Err(ApiError::NotReady(
            "Shutting down: this instance is draining; send requests to another".to_owned(),
        ));
    }
    match db::run(pool, |conn| migrate::readiness(conn, MIGRATIONS)).await? {
        None => Ok(Json(ProbeAnswer { status: "ready" })),
        Some(unready) => Err(ApiError::NotReady(unready.to_string())),
    }
}
