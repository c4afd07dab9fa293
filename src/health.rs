//! `/health` and `/ready`, for load balancers and orchestrators, and draining on SIGTERM.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::serde::Serialize;
use rocket::serde::json::Json;
use rocket::tokio::signal::unix::{SignalKind, signal};
use rocket::tokio::{select, time::sleep};
use rocket::{State, get, routes};
use utoipa::ToSchema;

use crate::db::{self, Pool};
use crate::http::{ApiError, HttpError};
use crate::migrate::{self, MIGRATIONS};

/// The configuration key of the drain: seconds between SIGTERM and closing the listener.
pub const DRAIN_KEY: &str = "shutdown_drain";

pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Probes", |rocket| async {
        let drain = match rocket.figment().extract_inner::<u64>(DRAIN_KEY) {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(err) if err.missing() => Duration::ZERO,
            Err(err) => {
                log::error!("invalid {DRAIN_KEY}: {err}");
                return Err(rocket);
            }
        };
        let draining = Draining::default();
        Ok(rocket
            .manage(draining.clone())
            .mount("/", routes![health, ready])
            .attach(AdHoc::on_liftoff("Drain on SIGTERM", move |rocket| {
                let shutdown = rocket.shutdown();
                Box::pin(async move { drain_on_sigterm(draining, drain, shutdown) })
            })))
    })
}

/// Set from SIGTERM on: `/ready` answers 503 while every request, in flight or new, is served.
#[derive(Debug, Default, Clone)]
pub struct Draining(Arc<AtomicBool>);

/// On SIGTERM, turns `/ready` to 503 at once and keeps serving for `drain`, so that a load
/// balancer polling `/ready` stops sending before the listener closes; then starts Rocket's
/// graceful shutdown (`shutdown.grace` for requests still in flight). A second SIGTERM cuts the
/// drain short. Rocket's own SIGTERM handler would close the listener at once, so `lib::build`
/// leaves SIGTERM to this one; Ctrl-C (SIGINT) stays Rocket's and stops at once.
fn drain_on_sigterm(draining: Draining, drain: Duration, shutdown: rocket::Shutdown) {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            log::error!("cannot handle SIGTERM ({err}); it will stop the process without draining");
            return;
        }
    };
    rocket::tokio::spawn(async move {
        term.recv().await;
        draining.0.store(true, Ordering::Relaxed);
        match drain.is_zero() {
            true => log::warn!("SIGTERM: shutting down"),
            false => log::warn!(
                "SIGTERM: draining. /ready answers 503; requests are served for {}s more, then \
                 the listener closes (another SIGTERM closes it now)",
                drain.as_secs()
            ),
        }
        select! {
            _ = sleep(drain) => {}
            _ = term.recv() => {}
        }
        shutdown.notify();
    });
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

/// Readiness: the instance is not shutting down, the database answers and its schema has every
/// migration this binary embeds, post-deploy ones aside.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "The database is unreachable, migrations this binary needs are pending, or the instance is shutting down (the detail says which)", body = HttpError,
            headers(("Retry-After" = i32, description = "Seconds to wait"))),
    )
)]
#[get("/ready")]
pub async fn ready(
    pool: &State<Pool>,
    draining: &State<Draining>,
) -> Result<Json<Status>, ApiError> {
    if draining.0.load(Ordering::Relaxed) {
        return Err(ApiError::NotReady(
            "Shutting down: this instance is draining; send requests to another".to_owned(),
        ));
    }
    let pending = db::run(pool, |conn| migrate::pending(conn, MIGRATIONS)).await?;
    // A pending post-deploy migration is a contract step this binary serves without; it is
    // applied after every replica runs this binary, so waiting for it here would keep the new
    // replicas of a rolling upgrade out of service for good.
    let required: Vec<&str> = (pending.iter())
        .filter(|files| !files.post_deploy)
        .map(|files| files.name)
        .collect();
    if required.is_empty() {
        Ok(Json(Status { status: "ready" }))
    } else {
        Err(ApiError::NotReady(format!(
            "Migrations pending: {}",
            required.join(", ")
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
