//! `/health` and `/ready`, for load balancers and orchestrators.

use rocket::fairing::AdHoc;
use rocket::serde::Serialize;
use rocket::serde::json::Json;
use rocket::{State, get, routes};
use utoipa::ToSchema;

use crate::db::{self, Pool};
use crate::http::{ApiError, HttpError};
use crate::migrate::{self, MIGRATIONS};

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Probes", |rocket| async {
        rocket.mount("/", routes![health, ready])
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
pub struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process serves requests. Touches no database, so a database outage never gets
/// a healthy process restarted.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Status))
)]
#[get("/health")]
pub fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers and its schema has every migration this binary embeds.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "The database is unreachable, or migrations are pending (the detail says which)", body = HttpError,
            headers(("Retry-After" = i32, description = "Seconds to wait"))),
    )
)]
#[get("/ready")]
pub async fn ready(pool: &State<Pool>) -> Result<Json<Status>, ApiError> {
    let pending = db::run(pool, |conn| migrate::pending(conn, MIGRATIONS)).await?;
    if pending.is_empty() {
        Ok(Json(Status { status: "ready" }))
    } else {
        Err(ApiError::NotReady(format!(
            "Migrations pending: {}",
            pending.join(", ")
        )))
    }
}
