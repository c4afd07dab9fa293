//! `/health` and `/ready`, for load balancers and orchestrators.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

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

/// The client side of `/ready`, for `students-api healthcheck` and so for the image's
/// `HEALTHCHECK`, which then needs no curl in the image. Returns the answer's body when it is a
/// 200, and otherwise says what answered or failed. std's `TcpStream` is enough: the service
/// speaks plain HTTP on this machine and only the status line matters, so no HTTP client crate.
pub fn ask_ready(listen: SocketAddr, timeout: Duration) -> Result<String, String> {
    // A service listening on every address is reached on the loopback one.
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, listen.port());
    let failed = |err: std::io::Error| format!("no answer from {target}: {err}");
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(failed)?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    // HTTP/1.0: the server closes the connection after its answer, which ends the read.
    write!(stream, "GET /ready HTTP/1.0\r\nHost: {target}\r\n\r\n").map_err(failed)?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(failed)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default();
    match status.split(' ').nth(1) {
        Some("200") => Ok(body.trim().to_owned()),
        _ => Err(format!("{target} answered {status:?}: {}", body.trim())),
    }
}
