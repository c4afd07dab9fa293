//! `GET /metrics` in Prometheus' text format, from the `prometheus` crate's registry: requests by
//! method, route template and status with a latency histogram; the request pool; the schema's
//! newest applied migration; the build.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::http::{ContentType, Header, Method};
use rocket::tokio::time::timeout;
use rocket::{Orbit, Request, Responder, Response, Rocket, State, get, routes};

use crate::auth::{CanScrape, Refused, SCRAPE_WAIT};
use crate::db::{self, Pool};
use crate::migrate::{self, MIGRATIONS};
use crate::{http, timing};

/// Request latency buckets, in seconds: the service answers most requests in about a
/// millisecond, so the default buckets (from 5 ms) would put nearly all in the first.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool_open: IntGauge,
    pool_idle: IntGauge,
    pool_waiting: IntGauge,
    pool_timeouts: IntCounter,
    schema: IntGaugeVec,
    /// One scrape at a time: the pool's counter is copied into `pool_timeouts` by difference.
    scrape: Mutex<()>,
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("students_api".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "Requests answered, by method, route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from a request's arrival to its response, by method and route template",
            )
            .buckets(BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let pool_open = IntGauge::new(
            "pool_connections_open",
            "Database connections open in the request pool",
        )?;
        let pool_idle = IntGauge::new(
            "pool_connections_idle",
            "Open database connections no request holds",
        )?;
        let pool_waiting = IntGauge::new(
            "pool_requests_waiting",
            "Requests waiting for a database connection",
        )?;
        let pool_timeouts = IntCounter::new(
            "pool_timeouts_total",
            "Requests answered 503 because no connection came within the pool timeout",
        )?;
        let schema = IntGaugeVec::new(
            Opts::new(
                "schema_migration_info",
                "The newest migration applied to the database (1), by version and folder name",
            ),
            &["version", "name"],
        )?;
        let newest = MIGRATIONS
            .list
            .last()
            .map(|migration| migration.name)
            .unwrap_or_default();
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "This binary (1): its version and the newest migration it embeds",
            ),
            &["version", "newest_migration"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), newest])
            .set(1);
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(pool_open.clone()),
            Box::new(pool_idle.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(pool_timeouts.clone()),
            Box::new(schema.clone()),
            Box::new(build),
        ] {
            registry.register(collector)?;
        }
        Ok(Metrics {
            registry,
            requests,
            latency,
            pool_open,
            pool_idle,
            pool_waiting,
            pool_timeouts,
            schema,
            scrape: Mutex::new(()),
        })
    }
}

pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Metrics", |rocket| async {
        match Metrics::new() {
            Ok(metrics) => {
                let fairing = RequestMetrics {
                    requests: metrics.requests.clone(),
                    latency: metrics.latency.clone(),
                    routes: OnceLock::new(),
                };
                Ok(rocket
                    .manage(metrics)
                    .mount("/", routes![metrics])
                    .attach(fairing))
            }
            Err(err) => {
                log::error!("cannot set up the metrics: {err}");
                Err(rocket)
            }
        }
    })
}

/// The scrape's text, never stored by a cache: it is read with a token.
#[derive(Responder)]
pub struct Scrape {
    text: (ContentType, String),
    cache_control: Header<'static>,
}

// (Within SCRAPE_WAIT, in the last sentence below: a `//` note, because the doc comment is
// the operation's description in the OpenAPI document.)
/// The Prometheus text exposition of every metric. The schema's version is read from the
/// database at each scrape (another replica may have migrated since this one started); when the
/// database does not answer, that one metric is left out rather than the scrape failing.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every metric, in Prometheus' text exposition format 0.0.4", body = String, content_type = "text/plain"),
        Refused,
    )
)]
#[get("/metrics")]
pub async fn metrics(_can: CanScrape, metrics: &State<Metrics>, pool: &State<Pool>) -> Scrape {
    let newest = timeout(SCRAPE_WAIT, db::run(pool, migrate::applied)).await;
    let _scrape = metrics
        .scrape
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let stats = pool.stats();
    metrics.pool_open.set(stats.open as i64);
    metrics.pool_idle.set(stats.idle as i64);
    metrics.pool_waiting.set(stats.waiting as i64);
    metrics
        .pool_timeouts
        .inc_by(stats.timeouts.saturating_sub(metrics.pool_timeouts.get()));
    metrics.schema.reset();
    if let Ok(Ok(applied)) = newest
        && let Some((version, _)) = applied.last()
    {
        let name = MIGRATIONS
            .find(version)
            .map(|migration| migration.name)
            .unwrap_or("");
        metrics
            .schema
            .with_label_values(&[version.as_str(), name])
            .set(1);
    }
    let mut text = String::new();
    if let Err(err) = TextEncoder::new().encode_utf8(&metrics.registry.gather(), &mut text) {
        log::error!("cannot encode the metrics: {err}");
    }
    Scrape {
        text: (
            ContentType::new("text", "plain")
                .with_params([("version", "0.0.4"), ("charset", "utf-8")]),
            text,
        ),
        cache_control: Header::new("Cache-Control", "no-store"),
    }
}

/// Counts and times every response, labelled by the route template that answered it (so that
/// `/students/1` and `/students/2` are one series), or `unmatched`.
///
/// Each route's series are resolved once and kept: `with_label_values` on every request hashes
/// the labels, takes the vector's lock and clones an `Arc`, contended atomics on every core
/// (BENCHMARKS.md measures what that cost).
struct RequestMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    /// By method, then route path: filled at liftoff, read-only afterwards.
    routes: OnceLock<HashMap<Method, HashMap<String, RouteSeries>>>,
}

/// The statuses the service answers, each with a slot for its counter.
const STATUSES: [u16; 14] = [
    200, 201, 204, 400, 401, 403, 404, 405, 413, 415, 422, 500, 503, 304,
];

#[derive(Default)]
struct RouteSeries {
    latency: OnceLock<Histogram>,
    requests: [OnceLock<IntCounter>; STATUSES.len()],
}

/// The route's template, or `refused` for the routes that answer what the framing check refused
/// (they match every path).
fn route_label(route: &rocket::Route) -> &str {
    if http::is_refusal(route) {
        "refused"
    } else {
        route.uri.path()
    }
}

/// Counts an answer Rocket gave without running any fairing, to a request whose method it does
/// not know (logged as `-`) or whose URI it cannot parse.
pub fn count_unscreened(request: &Request<'_>, response: &Response<'_>) {
    if let Some(metrics) = request.rocket().state::<Metrics>() {
        let status = response.status().code.to_string();
        metrics
            .requests
            .with_label_values(&["-", "unmatched", &status])
            .inc();
        metrics
            .latency
            .with_label_values(&["-", "unmatched"])
            .observe(timing::elapsed(request).as_secs_f64());
    }
}

/// `code` as three ASCII digits, on the stack: no allocation per request for the label.
fn digits(code: u16) -> [u8; 3] {
    [code / 100 % 10, code / 10 % 10, code % 10].map(|digit| b'0' + digit as u8)
}

#[rocket::async_trait]
impl Fairing for RequestMetrics {
    fn info(&self) -> Info {
        Info {
            name: "Request metrics",
            kind: Kind::Liftoff | Kind::Response,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let mut routes: HashMap<Method, HashMap<String, RouteSeries>> = HashMap::new();
        for route in rocket.routes() {
            (routes.entry(route.method).or_default())
                .entry(route_label(route).to_owned())
                .or_default();
        }
        let _ = self.routes.set(routes);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let seconds = timing::elapsed(request).as_secs_f64();
        let method = request.method();
        let route = http::route(request).map(route_label);
        let code = response.status().code;
        let digits = digits(code);
        let status = std::str::from_utf8(&digits).unwrap_or("000");
        let label = route.unwrap_or("unmatched");
        let route_labels = [method.as_str(), label];
        let labels = [method.as_str(), label, status];
        let known = (self.routes.get())
            .and_then(|routes| routes.get(&method)?.get(route?))
            .zip(STATUSES.iter().position(|known| *known == code));
        match known {
            Some((series, slot)) => {
                (series.latency)
                    .get_or_init(|| self.latency.with_label_values(&route_labels))
                    .observe(seconds);
                (series.requests[slot])
                    .get_or_init(|| self.requests.with_label_values(&labels))
                    .inc();
            }
            None => {
                self.latency
                    .with_label_values(&route_labels)
                    .observe(seconds);
                self.requests.with_label_values(&labels).inc();
            }
        }
    }
}
