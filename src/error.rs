//! The one error envelope of the HTTP boundary. Every failure, from a handler or from Rocket
//! itself (unknown route, failed request guard), leaves as `{"detail": ...}` JSON, the shape
//! FastAPI clients already parse; the cause of a server-side failure goes to the log only.

use std::error::Error as StdError;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rocket::http::{Header, Status};
use rocket::response::{self, Responder};
use rocket::serde::Serialize;
use rocket::serde::json::Json;
use rocket::{Catcher, Request, catch, catchers};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// An error answer: a status and the message the client sees.
#[derive(Debug)]
pub struct ErrorResponse {
    status: Status,
    detail: String,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
struct Body<'a> {
    detail: &'a str,
}

impl ErrorResponse {
    pub fn new(status: Status, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// The status's own reason phrase as the message, e.g. `Not Found`.
    pub fn plain(status: Status) -> Self {
        Self::new(status, status.reason_lossy())
    }
}

impl<'r> Responder<'r, 'static> for ErrorResponse {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = response::Response::build_from(
            Json(Body {
                detail: &self.detail,
            })
            .respond_to(request)?,
        )
        .status(self.status)
        .finalize();
        if self.status == Status::ServiceUnavailable {
            response.set_header(Header::new("Retry-After", RETRY_AFTER_SECS));
        }
        Ok(response)
    }
}

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    /// The database went away under a request; the pool replaces the connection, so retrying
    /// shortly is the right response.
    #[error("database unavailable")]
    Unavailable(#[source] DieselError),
    #[error("unexpected database error")]
    Internal(#[source] DieselError),
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => ApiError::NotFound,
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => ApiError::Unavailable(err),
            other => ApiError::Internal(other),
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let answer = match &self {
            ApiError::NotFound => ErrorResponse::plain(Status::NotFound),
            ApiError::Unavailable(_) => {
                log::warn!("{} {}: {}", request.method(), request.uri(), chain(&self));
                ErrorResponse::new(
                    Status::ServiceUnavailable,
                    "The database is unavailable; retry shortly",
                )
            }
            ApiError::Internal(_) => {
                log::error!("{} {}: {}", request.method(), request.uri(), chain(&self));
                ErrorResponse::plain(Status::InternalServerError)
            }
        };
        answer.respond_to(request)
    }
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

/// Failures Rocket answers itself: no route matched (404), a request guard failed (the pool's
/// guard fails with 503 when no connection comes within the pool timeout), a handler panicked.
pub fn catchers() -> Vec<Catcher> {
    catchers![service_unavailable, any_status]
}

#[catch(503)]
fn service_unavailable() -> ErrorResponse {
    ErrorResponse::new(
        Status::ServiceUnavailable,
        "The database is unavailable or busy; retry shortly",
    )
}

#[catch(default)]
fn any_status(status: Status, _request: &Request<'_>) -> ErrorResponse {
    ErrorResponse::plain(status)
}
