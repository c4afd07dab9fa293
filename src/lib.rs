//! The Students API: a Rocket service over one PostgreSQL table whose schema is owned by the
//! versioned migrations in `migrations/`.
//!
//! [`build`] assembles the whole service from a [`Figment`], so the binary and the tests start
//! exactly the same thing and differ only in the configuration they pass.

pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod migrate;
pub mod models;
pub mod openapi;
pub mod routes;
pub mod schema;
pub mod validation;

use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// The service, ready to ignite: migrations and the pool as one stage, then the routes, the
/// OpenAPI document with Swagger UI, and the JSON error catchers.
pub fn build(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(db::stage())
        .mount("/", routes::students::routes())
        .mount("/", routes::health::routes())
        .mount("/", openapi::routes())
        .register("/", error::catchers())
}
