//! The binary's log: start-up, warnings, errors, and one access line per request.
//!
//! Rocket's own logger writes four lines for every request at `log_level = "normal"` ("GET
//! /students:", ">> Matched", ">> Outcome", ">> Response succeeded"), and at `critical` it drops
//! the service's start-up lines (which migrations were applied) along with them. Installed before
//! Rocket's (Rocket then keeps it), this logger writes what Rocket's would at the configured level,
//! in Rocket's layout, except Rocket's per-request lines; [`AccessLog`] writes one line instead
//! (or, with `access_log = "json"`, one JSON object).

use std::io::Write;

use chrono::{SecondsFormat, Utc};
use log::{Level, LevelFilter, Log, Metadata, Record};
use rocket::config::LogLevel;
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::{Data, Request, Response};

use crate::settings::AccessLogFormat;
use crate::timing;

struct Logger {
    stderr: bool,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Rocket's launch banner is logged at `warn` but shown at every level but `off`.
        metadata.level() <= log::max_level() || metadata.target().starts_with("rocket::launch")
    }

    fn log(&self, record: &Record<'_>) {
        let target = record.target();
        // Rocket marks a continuation line with a target ending in `_`.
        let indented = target.ends_with('_');
        // What Rocket says about each request (its line, the route matched, the outcome, the
        // catcher used) is the access line's job; its own failures are not indented.
        // So is what the routes' generated code says about a guard that refused a request (a
        // 401 without a token, say): logged at `warn` under this crate's name, once per request.
        let per_request = (target.starts_with("rocket::server")
            && (indented || record.level() == Level::Info))
            || (indented && target.starts_with(env!("CARGO_CRATE_NAME")));
        let chatty = ["hyper", "rustls", "r2d2"]
            .iter()
            .any(|noisy| target.starts_with(noisy));
        let debug = log::max_level() >= LevelFilter::Debug;
        if !self.enabled(record.metadata()) || (per_request || chatty) && !debug {
            return;
        }
        let (indent, label) = match record.level() {
            _ if indented => ("   >> ", ""),
            Level::Error => ("", "Error: "),
            Level::Warn if !target.starts_with("rocket::launch") => ("", "Warning: "),
            _ => ("", ""),
        };
        let line = format!("{indent}{label}{}\n", record.args());
        // A closed stdout or stderr must not panic the service.
        let _ = match self.stderr {
            true => std::io::stderr().lock().write_all(line.as_bytes()),
            false => std::io::stdout().lock().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {}
}

/// Logs to stdout, for the service, at `info` until [`set_level`] says otherwise.
pub fn for_service() {
    install(Logger { stderr: false }, LevelFilter::Info);
}

/// Logs at Rocket's `log_level` from now on.
pub fn set_level(level: LogLevel) {
    log::set_max_level(level.into());
}

/// Logs progress to stderr, for the `migrate` subcommands, whose stdout is their result.
pub fn for_command() {
    install(Logger { stderr: true }, LevelFilter::Info);
}

fn install(logger: Logger, level: LevelFilter) {
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

/// The access log in `format`, as a fairing.
pub fn stage(format: AccessLogFormat) -> AdHoc {
    AdHoc::on_ignite("Access log", move |rocket| async move {
        // Also kept as state, for the catchers' answers to requests no fairing saw.
        rocket.manage(AccessLog(format)).attach(AccessLog(format))
    })
}

/// Writes one access line, or object, per request.
#[derive(Clone, Copy)]
struct AccessLog(AccessLogFormat);

/// The request's id, in its local cache, with the JSON access log.
struct RequestId(String);

/// Whether a client's `X-Request-Id` can be logged and echoed as it is: short, printable ASCII.
fn usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|byte| byte.is_ascii_graphic())
}

fn logging() -> bool {
    log::log_enabled!(target: "students_api::access", Level::Info)
}

#[rocket::async_trait]
impl Fairing for AccessLog {
    fn info(&self) -> Info {
        Info {
            name: "Access log",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if self.0 == AccessLogFormat::Json {
            let sent = request
                .headers()
                .get_one("X-Request-Id")
                .filter(|id| usable(id));
            let id = sent.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            request.local_cache(|| RequestId(id));
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if self.0 == AccessLogFormat::Json {
            let RequestId(id) = request.local_cache(|| RequestId(String::new()));
            response.set_raw_header("X-Request-Id", id.clone());
        }
        self.write(request, response, request.method().as_str());
    }
}

impl AccessLog {
    fn write(&self, request: &Request<'_>, response: &Response<'_>, method: &str) {
        if !logging() {
            return;
        }
        let millis = || timing::elapsed(request).as_secs_f64() * 1000.0;
        match self.0 {
            AccessLogFormat::Text => log::info!(
                target: "students_api::access",
                "{} {} {} {:.1}ms",
                method,
                request.uri(),
                response.status().code,
                millis(),
            ),
            AccessLogFormat::Json => {
                let RequestId(id) = request.local_cache(|| RequestId(String::new()));
                let line = serde_json::json!({
                    "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                    "request_id": id,
                    "method": method,
                    "path": request.uri().to_string(),
                    "route": crate::http::route(request).map(|route| route.uri.path()),
                    "status": response.status().code,
                    "duration_ms": (millis() * 10.0).round() / 10.0,
                    "client": request.client_ip().map(|ip| ip.to_string()),
                });
                log::info!(target: "students_api::access", "{line}");
            }
        }
    }
}

/// The access line of an answer Rocket gave without running any fairing (a catcher's, to a
/// method Rocket does not know, say). Rocket hands such a request over as a GET, so its method is
/// logged as `-`.
pub fn access_unscreened(request: &Request<'_>, response: &Response<'_>) {
    if let Some(log) = request.rocket().state::<AccessLog>() {
        log.write(request, response, "-");
    }
}
