//! Requests the service refuses before any route runs, because it may not have received them
//! whole or may read them differently from a proxy in front of it; and the headers every answer
//! carries whatever produced it.
//!
//! Rocket 0.5 gives a request fairing no way to answer, so [`Framing`] records its verdict in the
//! request's local cache and a route of the lowest rank on every path and method ([`FramingRefusal`])
//! answers it before any other route is tried; with no verdict it forwards at once. What hyper
//! and Rocket do before any fairing runs, and so what only the edge can refuse, is in
//! docs/operations.md ("Publishing the service").

use std::sync::Mutex;

use rocket::data::Data;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::form::Form;
use rocket::http::{Header, Method, Status};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Request, Response};

use super::error::{ApiError, FieldError, Problem};

/// The bytes of every body Rocket reads before any fairing, to look for a `_method` form field
/// (`"_method=delete".len()`, in rocket 0.5.1's `preprocess_request`). What [`body_truncated`]
/// relies on; the framing tests fail if a new Rocket reads a different amount.
const ROCKET_PEEK: usize = 14;

/// The most of a body read, and dropped, for a method whose routes take none: Rocket's whole
/// peek buffer.
const BODYLESS_PEEK: usize = 512;

/// The name of the refusal routes, which the 405 catcher leaves out of `Allow`.
pub(crate) const REFUSAL_ROUTE: &str = "refused framing";

/// What [`Framing`] decided about one request.
#[derive(Default)]
struct Verdict {
    /// Set by the fairing, so that a catcher can tell a request Rocket answered without running
    /// any fairing (an unknown method, say).
    screened: bool,
    /// The answer to give instead of routing, taken once by [`FramingRefusal`].
    refusal: Mutex<Option<ApiError>>,
    /// Whether the fairing refused it: the refusal route then answered it.
    refused: bool,
    /// Whether the connection must close after this answer: its framing was doubtful, so
    /// whatever follows on it cannot be trusted to start where this request ended.
    close: bool,
}

/// Whether [`Framing`] saw this request: `false` in a catcher means Rocket refused the request
/// before any fairing ran, so none of them set their headers, log line or metric.
pub fn screened(request: &Request<'_>) -> bool {
    request.local_cache(Verdict::default).screened
}

/// The route that answered the request, or the last that declined it: [`Request::route`], but
/// never a refusal route that only forwarded (those match every path and are tried first).
pub fn route<'r>(request: &'r Request<'_>) -> Option<&'r Route> {
    request
        .route()
        .filter(|route| route.name.as_deref() != Some(REFUSAL_ROUTE) || refused(request))
}

fn refused(request: &Request<'_>) -> bool {
    request.local_cache(Verdict::default).refused
}

/// The fairing that screens every request and finishes every answer.
pub struct Framing;

#[rocket::async_trait]
impl Fairing for Framing {
    fn info(&self) -> Info {
        Info {
            name: "Request framing",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, data: &mut Data<'_>) {
        let refusal = refusal_of(request, data).await;
        let doubtful = request.headers().contains("Transfer-Encoding")
            || refusal.as_ref().is_some_and(|(_, close)| *close);
        request.local_cache(|| Verdict {
            screened: true,
            refused: refusal.is_some(),
            refusal: Mutex::new(refusal.map(|(err, _)| err)),
            close: doubtful,
        });
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if request.local_cache(Verdict::default).close {
            response.set_header(Header::new("Connection", "close"));
        }
        no_store_if_error(response);
    }
}

/// `Cache-Control: no-store` on an error answer that sets no caching of its own: a 401 or 404
/// kept by a shared cache would be served to clients it was not meant for.
pub fn no_store_if_error(response: &mut Response<'_>) {
    if response.status().code >= 400 && !response.headers().contains("Cache-Control") {
        response.set_header(Header::new("Cache-Control", "no-store"));
    }
}

fn bad_request(loc: &[&str], message: &'static str, kind: &'static str) -> ApiError {
    ApiError::BadRequest(vec![FieldError::new(loc, Problem::new(message, kind))])
}

fn body_incomplete() -> ApiError {
    bad_request(
        &["body"],
        "The request body ended before the length it declared",
        "body_incomplete",
    )
}

/// The reason to refuse `request`, if any, and whether its connection must close.
async fn refusal_of(request: &Request<'_>, data: &mut Data<'_>) -> Option<(ApiError, bool)> {
    let headers = request.headers();
    if headers.contains("Content-Length") && headers.contains("Transfer-Encoding") {
        return Some((
            bad_request(
                &["header", "Transfer-Encoding"],
                "A request may not carry both Content-Length and Transfer-Encoding (RFC 9112, section 6.1)",
                "framing_ambiguous",
            ),
            true,
        ));
    }
    // Only over a connection: Rocket's local client, which the in-process tests use, has no
    // peer address and sends no Host.
    let connected = request.remote().is_some();
    if connected && (headers.get("Host").count() != 1 || request.host().is_none()) {
        return Some((
            bad_request(
                &["header", "Host"],
                "A request needs exactly one valid Host header (RFC 9112, section 3.2)",
                "host_invalid",
            ),
            true,
        ));
    }
    if body_truncated(data).await {
        return Some((body_incomplete(), true));
    }
    if takes_no_body(request.method()) && !data.peek_complete() {
        // Read what such a request sent, so that a body cut short is seen here: no handler reads it.
        let read = data.peek(BODYLESS_PEEK).await.len();
        if !data.peek_complete() {
            return Some((
                if read < BODYLESS_PEEK {
                    body_incomplete()
                } else {
                    ApiError::PayloadTooLarge(BODYLESS_PEEK as u64)
                },
                true,
            ));
        }
    }
    if overrides_method(request, data).await {
        return Some((
            bad_request(
                &["body", "_method"],
                "The _method form field cannot change a request's method: send the method in the request line",
                "method_override",
            ),
            false,
        ));
    }
    None
}

/// Whether the body ended early: the client closed its side, or broke its chunked framing,
/// before it sent what it declared.
///
/// Rocket reads the first [`ROCKET_PEEK`] bytes of every body before any fairing and logs and
/// drops a read error there; the body then looks complete and short. A peek that met the end of
/// the body marks it complete, and one that got all its bytes leaves any later error to whoever
/// reads the rest (the JSON body guard answers 400); so fewer bytes and no end seen means the
/// read failed.
async fn body_truncated(data: &mut Data<'_>) -> bool {
    !data.peek_complete() && data.peek(ROCKET_PEEK).await.len() < ROCKET_PEEK
}

fn takes_no_body(method: Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Delete | Method::Options
    )
}

/// Whether the body is a form whose first field is `_method`, with which Rocket turns a POST into
/// another method before any fairing sees it. The request line's method is lost by then, so such
/// a request is refused whatever its method: a WAF, log or edge rule that trusts the request
/// line would otherwise see a POST that the service runs as a DELETE.
async fn overrides_method(request: &Request<'_>, data: &mut Data<'_>) -> bool {
    if !request.content_type().is_some_and(|ct| ct.is_form()) {
        return false;
    }
    let peeked = data.peek(ROCKET_PEEK).await;
    std::str::from_utf8(peeked)
        .ok()
        .and_then(|form| Form::values(form).next())
        .is_some_and(|field| field.name == "_method")
}

/// Answers a request [`Framing`] refused, before any other route; forwards any other at once.
#[derive(Clone)]
pub struct FramingRefusal;

impl FramingRefusal {
    /// One route per method on every path, ranked before every other route.
    pub fn routes() -> Vec<Route> {
        [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
            Method::Options,
            Method::Trace,
            Method::Connect,
        ]
        .into_iter()
        .map(|method| {
            let mut route = Route::ranked(isize::MIN, method, "/<_..>", FramingRefusal);
            route.name = Some(REFUSAL_ROUTE.into());
            route
        })
        .collect()
    }
}

#[rocket::async_trait]
impl Handler for FramingRefusal {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let verdict = request.local_cache(Verdict::default);
        let refusal = verdict
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match refusal {
            Some(err) => Outcome::from(request, err),
            None => Outcome::forward(data, Status::NotFound),
        }
    }
}
