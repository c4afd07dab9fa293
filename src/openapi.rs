//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the routes that serve
//! it at `/openapi.json` with Swagger UI at `/docs` (its files are compiled in: no network).

use rocket::fairing::AdHoc;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{health, metrics, students};

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
    tags(
        (name = "students", description = "The student resource"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "operations", description = "Metrics for Prometheus"),
    )
)]
pub struct ApiDoc;

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("OpenAPI", |rocket| async {
        let docs = SwaggerUi::new("/docs/<_..>").url("/openapi.json", ApiDoc::openapi());
        rocket.mount("/", docs)
    })
}
