//! The HTTP boundary, shared by every resource: the one error type and its JSON bodies, the
//! catchers that keep Rocket's own errors JSON, the JSON body guard, the mapping of Rocket's
//! parameter errors to 422 entries, and the screening of requests that are not framed soundly.

mod body;
mod catchers;
mod error;
mod framing;
mod params;

use rocket::fairing::AdHoc;
use utoipa::IntoResponses;

pub use body::{Fields, FromJson, FromJsonObject, JsonBody};
pub use error::{
    ApiError, ErrorBody, FieldError, Problem, ValidationErrorBody, join_checks, refuse,
};
pub use framing::{Framing, no_store_if_error, route, screened};
pub use params::path_int;

/// What records an answer no fairing saw (the access log's line and the request metrics do for
/// every other answer): Rocket answers a request it cannot represent from a catcher alone.
pub struct Unscreened(pub fn(&rocket::Request<'_>, &rocket::Response<'_>));

/// The JSON catchers, for every path, and the routes that answer what [`Framing`] refused;
/// `record` is called with each answer no fairing saw.
pub fn stage(record: fn(&rocket::Request<'_>, &rocket::Response<'_>)) -> AdHoc {
    AdHoc::on_ignite("JSON errors", move |rocket| async move {
        rocket
            .manage(Unscreened(record))
            .register("/", catchers::catchers())
            .mount("/", framing::FramingRefusal::routes())
    })
}

/// Whether `route` is one of [`framing::FramingRefusal`]'s, which match every path.
pub fn is_refusal(route: &rocket::Route) -> bool {
    route.name.as_deref() == Some(framing::REFUSAL_ROUTE)
}

/// The 503 every route that touches the database can answer, for the OpenAPI document.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "The database is unavailable",
    headers(("Retry-After" = i32, description = "Seconds to wait"))
)]
pub struct Unavailable(pub ErrorBody);

/// How a request body can be refused before it is read as input, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum BodyRejected {
    #[response(status = 400, description = "The body is not valid JSON")]
    Malformed(ValidationErrorBody),
    #[response(
        status = 413,
        description = "The body is larger than the `json` limit (64 KiB in the shipped Rocket.toml)"
    )]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "The body is not sent as application/json")]
    NotJson(ErrorBody),
}
