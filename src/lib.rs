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
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod schema;
pub mod settings;
pub mod startup;
pub mod students;
pub mod timing;

use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// The service, ready to ignite: the start-up stage (settings, database, migrations, pool,
/// drain), access control, the student resource, the probes, the OpenAPI document with Swagger UI, the JSON error
/// catchers, the metrics and the access log. The settings are read from `figment` at ignition,
/// unless the caller already manages them.
pub fn build(figment: Figment) -> Rocket<Build> {
    // SIGTERM drains first (`drain`); Rocket's own handler would close the listener at once.
    // Ctrl-C stays Rocket's.
    let figment = figment.merge(("shutdown.signals", Vec::<String>::new()));
    rocket::custom(figment)
        // First, so that nothing else acts on a request it refuses.
        .attach(http::Framing)
        .attach(startup::stage())
        .attach(auth::stage())
        .attach(timing::RequestTiming)
        .attach(students::stage())
        .attach(health::stage())
        .attach(openapi::stage())
        .attach(http::stage(|request, response| {
            logging::access_unscreened(request, response);
            metrics::count_unscreened(request, response);
        }))
        .attach(metrics::stage())
        .attach(logging::stage())
}
