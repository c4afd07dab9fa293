//! The one error envelope of the HTTP boundary. Every failure, from a handler or from Rocket
//! itself (unknown route, failed request guard), leaves as JSON in the shapes FastAPI clients
//! already parse: `{"detail": "message"}`, or for invalid input
//! `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`. The cause of a server-side
//! failure goes to the log only.

use std::error::Error as StdError;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rocket::http::{Header, Method, Status};
use rocket::response::{self, Responder, Response};
use rocket::serde::Serialize;
use rocket::serde::json::Json;
use rocket::{Catcher, Request, catch, catchers};
use utoipa::ToSchema;

use crate::validation::{FieldError, MAX_BODY_BYTES};

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

const NO_CONNECTION: &str = "The database is unavailable or busy; retry shortly";

/// The body of every error that is not about input: `{"detail": "Not Found"}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
pub struct HttpError {
    #[schema(example = "Student not found")]
    pub detail: String,
}

/// The body of every error about input: one entry per offending field.
#[derive(Debug, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
pub struct HttpValidationError {
    pub detail: Vec<FieldError>,
}

/// The 503 every route that touches the database can answer, in the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The database is unavailable",
    headers(("Retry-After" = i32, description = "Seconds to wait"))
)]
pub struct Unavailable(#[allow(dead_code)] HttpError);

/// How a request body can be refused before it is read as a student, in the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyRejected {
    #[response(status = 400, description = "The body is not valid JSON")]
    Malformed(HttpValidationError),
    #[response(status = 413, description = "The body is larger than 64 KiB")]
    TooLarge(HttpError),
    #[response(status = 415, description = "The body is not sent as application/json")]
    NotJson(HttpError),
}

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(&'static str),
    /// Well-formed input that breaks a rule: 422.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// A body that is not JSON at all: 400.
    #[error("malformed body")]
    BadRequest(Vec<FieldError>),
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("request body is not application/json")]
    UnsupportedMediaType,
    /// No pooled connection came within the pool timeout: the database is down or every
    /// connection is busy.
    #[error("no database connection available")]
    NoConnection,
    /// The database went away under a request; the pool replaces the connection, so retrying
    /// shortly is the right response.
    #[error("database unavailable")]
    Unavailable(#[source] DieselError),
    /// Up, but not ready to serve: the message says why.
    #[error("{0}")]
    NotReady(String),
    #[error("unexpected database error")]
    Internal(#[source] DieselError),
}

impl ApiError {
    pub fn status(&self) -> Status {
        match self {
            ApiError::NotFound(_) => Status::NotFound,
            ApiError::Invalid(_) => Status::UnprocessableEntity,
            ApiError::BadRequest(_) => Status::BadRequest,
            ApiError::PayloadTooLarge => Status::PayloadTooLarge,
            ApiError::UnsupportedMediaType => Status::UnsupportedMediaType,
            ApiError::NoConnection | ApiError::Unavailable(_) | ApiError::NotReady(_) => {
                Status::ServiceUnavailable
            }
            ApiError::Internal(_) => Status::InternalServerError,
        }
    }
}

/// Whether `err` means the connection itself is gone (the server restarted or went away), as
/// opposed to a query that failed on a healthy connection.
pub fn is_connection_lost(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) | DieselError::BrokenTransactionManager
    )
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => ApiError::NotFound("Student not found"),
            err if is_connection_lost(&err) => ApiError::Unavailable(err),
            // Input is validated before it reaches the database with the same rules as the CHECK
            // constraints, so reaching this means the two disagree: still the client's input,
            // and still no 500.
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, ref info) => {
                log::warn!("a CHECK constraint caught input that validation let through: {err}");
                let constraint = info.constraint_name().unwrap_or("a check constraint");
                ApiError::Invalid(vec![FieldError {
                    loc: vec!["body".into()],
                    msg: format!("The input violates {constraint}"),
                    kind: "value_error".into(),
                }])
            }
            other => ApiError::Internal(other),
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        match self {
            ApiError::Invalid(detail) | ApiError::BadRequest(detail) => {
                json(status, HttpValidationError { detail }, request)
            }
            ApiError::Unavailable(_) => {
                log::warn!("{} {}: {}", request.method(), request.uri(), chain(&self));
                unavailable("The database is unavailable; retry shortly", request)
            }
            // The pool has already logged why it had no connection to give.
            ApiError::NoConnection => unavailable(NO_CONNECTION, request),
            ApiError::NotReady(detail) => unavailable(&detail, request),
            ApiError::Internal(_) => {
                log::error!("{} {}: {}", request.method(), request.uri(), chain(&self));
                message(status, status.reason_lossy(), request)
            }
            ApiError::PayloadTooLarge => message(
                status,
                &format!("The request body is larger than {MAX_BODY_BYTES} bytes"),
                request,
            ),
            ApiError::UnsupportedMediaType => message(
                status,
                "The request body must be JSON, sent with Content-Type: application/json",
                request,
            ),
            ApiError::NotFound(detail) => message(status, detail, request),
        }
    }
}

fn json<T: Serialize>(status: Status, body: T, request: &Request<'_>) -> response::Result<'static> {
    Response::build_from(Json(body).respond_to(request)?)
        .status(status)
        .ok()
}

fn message(status: Status, detail: &str, request: &Request<'_>) -> response::Result<'static> {
    json(
        status,
        HttpError {
            detail: detail.to_owned(),
        },
        request,
    )
}

fn unavailable(detail: &str, request: &Request<'_>) -> response::Result<'static> {
    let mut response = message(Status::ServiceUnavailable, detail, request)?;
    response.set_header(Header::new("Retry-After", RETRY_AFTER_SECS.to_string()));
    Ok(response)
}

/// `err` and every error beneath it, outermost first, for the log.
fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Failures Rocket answers itself: no route matched (404, or 405 when the path exists with other
/// methods), a request guard failed (the pool's guard fails with 503 when no connection comes
/// within the pool timeout), a handler panicked (500).
pub fn catchers() -> Vec<Catcher> {
    catchers![bad_request, not_found, service_unavailable, any_status]
}

/// A JSON error answer produced by a catcher.
pub struct Caught(response::Result<'static>);

impl<'r> Responder<'r, 'static> for Caught {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        self.0
    }
}

#[catch(404)]
fn not_found(request: &Request<'_>) -> Caught {
    if allowed_methods(request).is_empty() {
        Caught(message(Status::NotFound, "Not Found", request))
    } else {
        method_not_allowed(request)
    }
}

fn method_not_allowed(request: &Request<'_>) -> Caught {
    let allow = allowed_methods(request)
        .iter()
        .map(|method| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Caught(
        message(Status::MethodNotAllowed, "Method Not Allowed", request).map(|mut response| {
            response.set_header(Header::new("Allow", allow));
            response
        }),
    )
}

/// Rocket cannot represent a method it does not know (`QUERY`, say): it hands such a request to
/// this catcher as a GET that never went through routing. On a path that has routes, that is a
/// method this service does not allow, so it gets the same 405 as any other.
#[catch(400)]
fn bad_request(request: &Request<'_>) -> Caught {
    if request.route().is_none() && !allowed_methods(request).is_empty() {
        return method_not_allowed(request);
    }
    Caught(message(Status::BadRequest, "Bad Request", request))
}

#[catch(503)]
fn service_unavailable(request: &Request<'_>) -> Caught {
    Caught(unavailable(NO_CONNECTION, request))
}

#[catch(default)]
fn any_status(status: Status, request: &Request<'_>) -> Caught {
    Caught(message(status, status.reason_lossy(), request))
}

/// The methods of the mounted routes whose path matches the request's, sorted, with HEAD wherever
/// GET is (Rocket answers HEAD from GET routes).
fn allowed_methods(request: &Request<'_>) -> Vec<Method> {
    let path: Vec<&str> = segments(request.uri().path().as_str());
    let mut methods: Vec<Method> = request
        .rocket()
        .routes()
        .filter(|route| route_path_matches(&segments(route.uri.path()), &path))
        .map(|route| route.method)
        .collect();
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.sort_by_key(|method| method.as_str());
    methods.dedup();
    methods
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .collect()
}

fn route_path_matches(route: &[&str], path: &[&str]) -> bool {
    match (route.first(), path.first()) {
        (Some(segment), _) if segment.starts_with('<') && segment.ends_with("..>") => true,
        (Some(segment), Some(actual)) => {
            (segment.starts_with('<') || segment == actual)
                && route_path_matches(&route[1..], &path[1..])
        }
        (None, None) => true,
        _ => false,
    }
}
