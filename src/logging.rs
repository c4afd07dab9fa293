//! The binary's log: start-up, warnings, errors, and one access line per request.
//!
//! Rocket's own logger writes four lines for every request at `log_level = "normal"` ("GET
//! /students:", ">> Matched", ">> Outcome", ">> Response succeeded"), and at `critical` it drops
//! the service's start-up lines (which migrations were applied) along with them. Installed before
//! Rocket's (Rocket then keeps it), this logger writes what Rocket's would at the configured level,
//! in Rocket's layout, except Rocket's per-request lines; [`AccessLog`] writes one line instead.

use std::io::Write;
use std::time::Instant;

use log::{Level, LevelFilter, Log, Metadata, Record};
use rocket::config::LogLevel;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};

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
        let per_request =
            target.starts_with("rocket::server") && (indented || record.level() == Level::Info);
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

/// Logs to stdout at Rocket's `log_level`, for the service.
pub fn for_service(level: LogLevel) {
    install(Logger { stderr: false }, level.into());
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

/// One line per request at `info`: method, path and query, status, and time to the response.
pub struct AccessLog;

/// When the request arrived, kept in its local cache.
struct Arrived(Instant);

#[rocket::async_trait]
impl Fairing for AccessLog {
    fn info(&self) -> Info {
        Info {
            name: "Access log",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if log::log_enabled!(target: "students_api::access", Level::Info) {
            request.local_cache(|| Arrived(Instant::now()));
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if log::log_enabled!(target: "students_api::access", Level::Info) {
            let Arrived(arrived) = request.local_cache(|| Arrived(Instant::now()));
            log::info!(
                target: "students_api::access",
                "{} {} {} {:.1}ms",
                request.method(),
                request.uri(),
                response.status().code,
                arrived.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}
