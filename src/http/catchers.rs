//! Failures Rocket answers itself, as JSON: no route matched (404, or 405 with `Allow` when the
//! path exists with other methods), a method Rocket cannot parse (405), a handler panicked (500).
//!
//! A request Rocket cannot represent (an unknown method, a URI it cannot parse) goes straight to
//! a catcher without any fairing; its answer is finished here instead, with the headers, the
//! access line and the metric the fairings give every other answer.

use rocket::http::{Header, Method, Status};
use rocket::response::{self, Responder};
use rocket::{Catcher, Request, catch, catchers};

use super::Unscreened;
use super::error::{message, take_refusal};
use super::framing::{no_store_if_error, screened};

pub fn catchers() -> Vec<Catcher> {
    catchers![bad_request, not_found, any_status]
}

/// A JSON error answer produced by a catcher.
pub struct Caught(response::Result<'static>);

impl<'r> Responder<'r, 'static> for Caught {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.0?;
        if !screened(request) {
            // What Rocket's Shield fairing adds to every other answer.
            response.set_header(Header::new("X-Content-Type-Options", "nosniff"));
            response.set_header(Header::new("X-Frame-Options", "SAMEORIGIN"));
            no_store_if_error(&mut response);
            if let Some(Unscreened(record)) = request.rocket().state::<Unscreened>() {
                record(request, &response);
            }
        }
        Ok(response)
    }
}

/// A path no route has, or one whose route found nothing there (`/docs/no-such-file.js`): 404;
/// a path whose routes all take other methods: 405.
#[catch(404)]
fn not_found(request: &Request<'_>) -> Caught {
    let allowed = allowed_methods(request);
    if allowed.is_empty() || allowed.contains(&request.method()) {
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
    if super::route(request).is_none() && !allowed_methods(request).is_empty() {
        return method_not_allowed(request);
    }
    Caught(message(Status::BadRequest, "Bad Request", request))
}

/// Also a request guard's refusal (a 401 without a token, say), answered as its error says.
#[catch(default)]
fn any_status(status: Status, request: &Request<'_>) -> Caught {
    if let Some(err) = take_refusal(request) {
        return Caught(err.respond_to(request));
    }
    Caught(message(status, status.reason_lossy(), request))
}

/// The methods of the mounted routes whose path matches the request's, sorted, with HEAD wherever
/// GET is (Rocket answers HEAD from GET routes).
///
/// Rocket 0.5 has no 405 of its own and keeps its route matching (`Route::matches`) crate-private,
/// so the path is compared segment by segment here; `<param>` matches any one segment and
/// `<param..>` the rest.
fn allowed_methods(request: &Request<'_>) -> Vec<Method> {
    let path: Vec<&str> = segments(request.uri().path().as_str());
    let mut methods: Vec<Method> = request
        .rocket()
        .routes()
        .filter(|route| !super::is_refusal(route))
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
