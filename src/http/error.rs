//! The one error type of the HTTP boundary and the two JSON bodies every error leaves in, the
//! shapes FastAPI clients already parse: `{"detail": "message"}`, or for invalid input
//! `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`. The cause of a server-side failure
//! goes to the log only.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::sync::Mutex;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rocket::Request;
use rocket::http::{Header, Status};
use rocket::request::Outcome;
use rocket::response::{self, Responder, Response};
use rocket::serde::Serialize;
use rocket::serde::json::Json;
use utoipa::ToSchema;

use crate::db::{self, DbError};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u32 = 1;

/// The body of every error that is not about input: `{"detail": "Not Found"}`.
// Documented under FastAPI's name for it; this comment is not in the document, the line above is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
#[schema(as = HttpError)]
pub struct ErrorBody {
    #[schema(example = "Student not found")]
    pub detail: Cow<'static, str>,
}

/// The body of every error about input: one entry per offending field.
// Documented under FastAPI's name for it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
#[schema(as = HttpValidationError)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// What is wrong with one value, before anyone knows where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct Problem {
    /// For people: "Field required".
    pub msg: Cow<'static, str>,
    /// For programs, in pydantic's words: `missing`, `string_type`, `int_parsing`, ...
    pub kind: &'static str,
}

impl Problem {
    pub fn new(msg: impl Into<Cow<'static, str>>, kind: &'static str) -> Self {
        Problem {
            msg: msg.into(),
            kind,
        }
    }
}

/// One problem with one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
pub struct FieldError {
    /// Where: `["body", "first_name"]`, `["query", "limit"]`, `["path", "id"]`.
    #[schema(example = json!(["body", "first_name"]))]
    pub loc: Vec<String>,
    /// What is wrong, for people.
    #[schema(example = "Field required")]
    pub msg: Cow<'static, str>,
    /// What is wrong, for programs: `missing`, `string_type`, `string_too_long`, ...
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: &'static str,
}

impl FieldError {
    /// `problem` at `loc`: `["body"]`, `["query", "limit"]`.
    pub fn new(loc: &[&str], problem: Problem) -> Self {
        FieldError {
            loc: loc.iter().map(|part| (*part).to_owned()).collect(),
            msg: problem.msg,
            kind: problem.kind,
        }
    }
}

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    /// Well-formed input that breaks a rule: 422.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// A body that is not JSON at all: 400.
    #[error("malformed body")]
    BadRequest(Vec<FieldError>),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(u64),
    #[error("request body is not application/json")]
    UnsupportedMediaType,
    /// No pooled connection came within the pool timeout: the database is down or every
    /// connection is busy. The pool has already logged why.
    #[error("no database connection available")]
    NoConnection,
    /// The database went away under a request; the pool replaces the connection, so retrying
    /// shortly is the right response.
    #[error("database unavailable")]
    ConnectionLost(#[source] DieselError),
    /// Up, but not ready to serve: the message says why.
    #[error("{0}")]
    NotReady(String),
    /// Another request holds what this one needs and has not finished: 409, to retry after
    /// `Retry-After`. The message says what.
    #[error("{0}")]
    Conflict(&'static str),
    #[error("unexpected database error")]
    Internal(#[source] DieselError),
    /// No usable credentials: 401, with `challenge` as `WWW-Authenticate`.
    #[error("{detail}")]
    Unauthorized {
        challenge: &'static str,
        detail: &'static str,
    },
    /// Credentials that do not allow this: 403, with `challenge` as `WWW-Authenticate`.
    #[error("{detail}")]
    Forbidden {
        challenge: &'static str,
        detail: &'static str,
    },
}

impl ApiError {
    pub fn not_found(detail: &'static str) -> Self {
        ApiError::NotFound(detail.into())
    }

    pub fn status(&self) -> Status {
        match self {
            ApiError::NotFound(_) => Status::NotFound,
            ApiError::Invalid(_) => Status::UnprocessableEntity,
            ApiError::BadRequest(_) => Status::BadRequest,
            ApiError::PayloadTooLarge(_) => Status::PayloadTooLarge,
            ApiError::UnsupportedMediaType => Status::UnsupportedMediaType,
            ApiError::NoConnection | ApiError::ConnectionLost(_) | ApiError::NotReady(_) => {
                Status::ServiceUnavailable
            }
            ApiError::Conflict(_) => Status::Conflict,
            ApiError::Internal(_) => Status::InternalServerError,
            ApiError::Unauthorized { .. } => Status::Unauthorized,
            ApiError::Forbidden { .. } => Status::Forbidden,
        }
    }
}

/// Both results of two independent checks of one request (the path and the body of a `PUT`,
/// say), or one error listing the problems of both. A body that could not be read at all (400, 413, 415) says
/// more than a bad path parameter, so it wins over one.
pub fn join_checks<A, B>(
    a: Result<A, ApiError>,
    b: Result<B, ApiError>,
) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(ApiError::Invalid(mut errors)), Err(ApiError::Invalid(more))) => {
            errors.extend(more);
            Err(ApiError::Invalid(errors))
        }
        (_, Err(err)) | (Err(err), _) => Err(err),
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::NoConnection => ApiError::NoConnection,
            DbError::Query(err) => err.into(),
        }
    }
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match err {
            // Generic on purpose: a resource says what was not found where it knows.
            DieselError::NotFound => ApiError::not_found("Not Found"),
            err if db::is_connection_unusable(&err) => ApiError::ConnectionLost(err),
            // Input is validated before it reaches the database with the same rules as the CHECK
            // constraints, so reaching this means the two disagree: still the client's input,
            // and still no 500.
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, ref info) => {
                log::warn!("a CHECK constraint caught input that validation let through: {err}");
                let constraint = info.constraint_name().unwrap_or("a check constraint");
                ApiError::Invalid(vec![FieldError::new(
                    &["body"],
                    Problem::new(format!("The input violates {constraint}"), "value_error"),
                )])
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
                json(status, ValidationErrorBody { detail }, request)
            }
            ApiError::ConnectionLost(_) => {
                log::warn!("{} {}: {}", request.method(), request.uri(), chain(&self));
                unavailable("The database is unavailable; retry shortly", request)
            }
            ApiError::NoConnection => unavailable(NO_CONNECTION, request),
            ApiError::NotReady(detail) => unavailable(detail, request),
            ApiError::Conflict(detail) => retry_after(status, detail, request),
            ApiError::Internal(_) => {
                log::error!("{} {}: {}", request.method(), request.uri(), chain(&self));
                message(status, status.reason_lossy(), request)
            }
            ApiError::PayloadTooLarge(limit) => message(
                status,
                format!("The request body is larger than {limit} bytes"),
                request,
            ),
            ApiError::UnsupportedMediaType => message(
                status,
                "The request body must be JSON, sent with Content-Type: application/json",
                request,
            ),
            ApiError::NotFound(detail) => message(status, detail, request),
            ApiError::Unauthorized { challenge, detail }
            | ApiError::Forbidden { challenge, detail } => {
                let mut response = message(status, detail, request)?;
                response.set_header(Header::new("WWW-Authenticate", challenge));
                Ok(response)
            }
        }
    }
}

/// What a request guard refused the request with, kept for the catcher of its status to answer.
struct Refusal(Mutex<Option<ApiError>>);

/// Fails a request guard with `err`, which the catchers then answer as a handler's error would
/// be: Rocket hands a guard's failure to a catcher, which sees only the status.
pub fn refuse<T>(request: &Request<'_>, err: ApiError) -> Outcome<T, ()> {
    let status = err.status();
    request.local_cache(|| Refusal(Mutex::new(Some(err))));
    Outcome::Error((status, ()))
}

/// The error a request guard of this request refused it with, once.
pub(crate) fn take_refusal(request: &Request<'_>) -> Option<ApiError> {
    let refusal = request.local_cache(|| Refusal(Mutex::new(None)));
    let mut refusal = refusal.0.lock().unwrap_or_else(|p| p.into_inner());
    refusal.take()
}

const NO_CONNECTION: &str = "The database is unavailable or busy; retry shortly";

fn json<T: Serialize>(status: Status, body: T, request: &Request<'_>) -> response::Result<'static> {
    Response::build_from(Json(body).respond_to(request)?)
        .status(status)
        .ok()
}

/// `{"detail": detail}` with `status`.
pub(crate) fn message(
    status: Status,
    detail: impl Into<Cow<'static, str>>,
    request: &Request<'_>,
) -> response::Result<'static> {
    let detail = detail.into();
    json(status, ErrorBody { detail }, request)
}

/// A 503 with `Retry-After`.
fn unavailable(
    detail: impl Into<Cow<'static, str>>,
    request: &Request<'_>,
) -> response::Result<'static> {
    retry_after(Status::ServiceUnavailable, detail, request)
}

/// `{"detail": detail}` with `status` and `Retry-After`.
fn retry_after(
    status: Status,
    detail: impl Into<Cow<'static, str>>,
    request: &Request<'_>,
) -> response::Result<'static> {
    let mut response = message(status, detail, request)?;
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
