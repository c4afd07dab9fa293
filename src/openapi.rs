//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the routes that serve
//! it at `/openapi.json` with Swagger UI at `/docs` (its files are compiled in: no network).
//!
//! The routes are this module's, over utoipa-swagger-ui's framework-free `serve`: that crate's
//! own Rocket integration depends on Rocket's default features, which would compile HTTP/2 back
//! in (docs/operations.md, "Publishing the service").

use std::path::PathBuf;
use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket::http::ContentType;
use rocket::http::uri::Origin;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{Responder, State, get, routes};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use crate::{auth, health, metrics, students};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Students API",
        description = "Students stored in PostgreSQL, whose schema evolves by versioned, reversible migrations.",
    ),
    paths(
        students::list,
        students::get_one,
        students::create,
        students::replace,
        students::update,
        students::remove,
        health::health,
        health::ready,
        metrics::metrics,
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "students", description = "The student resource"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "operations", description = "Metrics for Prometheus"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme the operations' `security` names ([`auth::SCHEME`]), which Swagger
/// UI's Authorize button then offers.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(auth::SCHEME, auth::security_scheme());
    }
}

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("OpenAPI", |rocket| async {
        let swagger = SwaggerConfig(Arc::new(Config::from("/openapi.json")));
        rocket
            .manage(ApiDoc::openapi())
            .manage(swagger)
            .mount("/", routes![document, docs])
    })
}

struct SwaggerConfig(Arc<Config<'static>>);

#[get("/openapi.json")]
fn document(document: &State<utoipa::openapi::OpenApi>) -> Json<&utoipa::openapi::OpenApi> {
    Json(document.inner())
}

/// A file of Swagger UI, or the way to its page.
#[derive(Responder)]
enum DocsAnswer {
    File((ContentType, Vec<u8>)),
    Redirect(Redirect),
}

/// Also `/docs` itself (`<file..>` matches no segment), sent on to `/docs/`, since the page's
/// links are relative to it. (The location is a plain string: `uri!("/docs/")` normalises the
/// trailing slash away, which made `/docs` a redirect to itself.)
#[get("/docs/<file..>")]
fn docs(file: PathBuf, uri: &Origin<'_>, config: &State<SwaggerConfig>) -> Option<DocsAnswer> {
    if !uri.path().ends_with('/') && file.as_os_str().is_empty() {
        return Some(DocsAnswer::Redirect(Redirect::found("/docs/")));
    }
    let file = file.to_str()?;
    match utoipa_swagger_ui::serve(file, config.0.clone()) {
        Ok(found) => {
            let found = found?;
            let content_type = ContentType::parse_flexible(&found.content_type)?;
            Some(DocsAnswer::File((content_type, found.bytes.into_owned())))
        }
        Err(err) => {
            log::error!("Swagger UI file {file:?}: {err}");
            None
        }
    }
}
