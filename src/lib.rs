//! The Students API: a Rocket service over one PostgreSQL table whose schema is owned by the
//! versioned migrations in `migrations/`.
//!
//! [`build`] assembles the whole service from a [`Figment`], so the binary and the tests start
//! exactly the same thing and differ only in the configuration they pass.

pub mod auth;
pub mod cli;
pub mod db;
pub mod drain;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod schema;
pub mod settings;
pub mod startup;
pub mod students;
pub mod timing;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use crate::settings::Settings;

/// The service, ready to ignite: the start-up stage (database, migrations, pool, drain), access
/// control, the student resource, the probes, the OpenAPI document with Swagger UI, the JSON
/// error catchers, the metrics and the access log, configured by `figment`. Invalid settings make
/// ignition fail, the key and the value logged.
pub fn build(figment: Figment) -> Rocket<Build> {
    match Settings::from_figment(figment.clone()) {
        Ok(settings) => build_with(figment, settings),
        Err(err) => rocket::custom(figment).attach(AdHoc::try_on_ignite(
            "Settings",
            move |rocket| async move {
                log::error!("{err}");
                Err(rocket)
            },
        )),
    }
}

/// [`build`] with the settings already read from `figment`, which the binary reads first (to log
/// at the configured level and to check its port before migrating). Each stage is given what it
/// needs of them.
pub fn build_with(figment: Figment, settings: Settings) -> Rocket<Build> {
    // SIGTERM drains first (`drain`); Rocket's own handler would close the listener at once.
    // Ctrl-C stays Rocket's.
    let figment = figment.merge(("shutdown.signals", Vec::<String>::new()));
    let public_reads = settings.service.public_reads;
    let access_log = settings.service.access_log;
    rocket::custom(figment)
        // First, so that nothing else acts on a request it refuses.
        .attach(http::Framing)
        .attach(startup::stage(settings))
        .attach(auth::stage(public_reads))
        .attach(timing::RequestTiming)
        .attach(students::stage())
        .attach(health::stage())
        .attach(openapi::stage())
        .attach(http::stage(|request, response| {
            logging::access_unscreened(request, response);
            metrics::count_unscreened(request, response);
        }))
        .attach(metrics::stage())
        .attach(logging::stage(access_log))
}
