//! The HTTP boundary, shared by every resource: the one error type and its JSON bodies, the
//! catchers that keep Rocket's own errors JSON, the JSON body guard, and the mapping of Rocket's
//! parameter errors to 422 entries.

mod body;
mod catchers;
mod error;
mod params;

use std::collections::BTreeMap;

use rocket::fairing::AdHoc;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response};
use utoipa::{IntoResponses, PartialSchema};

pub use body::{Fields, FromJson, FromJsonObject, JsonBody};
pub use error::{
    ApiError, FieldError, HttpError, HttpValidationError, Problem, RETRY_AFTER_SECS, both,
};
pub use params::path_int;

/// The JSON catchers, for every path.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("JSON errors", |rocket| async {
        rocket.register("/", catchers::catchers())
    })
}

/// The 503 every route that touches the database can answer, for the OpenAPI document.
pub struct Unavailable;

impl IntoResponses for Unavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let retry_after = HeaderBuilder::new()
            .schema(i32::schema())
            .description(Some("Seconds to wait"))
            .build();
        let response = json_response("The database is unavailable", "HttpError")
            .header("Retry-After", retry_after);
        BTreeMap::from([("503".to_owned(), response.build().into())])
    }
}

/// How a request body can be refused before it is read as input, for the OpenAPI document.
pub struct BodyRejected;

impl IntoResponses for BodyRejected {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("400", "The body is not valid JSON", "HttpValidationError"),
            (
                "413",
                "The body is larger than the `json` limit (64 KiB in the shipped Rocket.toml)",
                "HttpError",
            ),
            (
                "415",
                "The body is not sent as application/json",
                "HttpError",
            ),
        ]
        .into_iter()
        .map(|(status, description, schema)| {
            let response = json_response(description, schema).build();
            (status.to_owned(), response.into())
        })
        .collect()
    }
}

fn json_response(description: &str, schema: &str) -> ResponseBuilder {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}
