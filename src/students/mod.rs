//! The student resource: `/students` and `/students/{id}`, their input, their row and queries.
//!
//! Handlers check the caller's token first ([`crate::auth`]: before the body is read), then all
//! input, then take a pooled connection only for the query, so bad requests and slow uploads
//! never hold one.

pub mod input;
pub mod model;
mod rfc3339;

use std::io::Cursor;

use rocket::fairing::AdHoc;
use rocket::form;
use rocket::http::ContentType;
use rocket::http::uri::fmt::{Formatter, FromUriParam, Query, UriDisplay};
use rocket::response::status::NoContent;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{Request, State, delete, get, patch, post, put, routes, uri};

use crate::auth::{CanRead, CanWrite, ReadRefused, Refused};
use crate::db::{self, Pool};
use crate::http::{
    ApiError, BodyRejected, ErrorBody, JsonBody, Unavailable, ValidationErrorBody, join_checks,
    path_int,
};
use crate::idempotency::{self, Answer, Claim, IdempotencyKey, IdempotencyParam, Written};
use input::{ListParams, StudentCreate, StudentUpdate};
use model::Student;

/// The resource's routes, mounted at the root.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Students", |rocket| async {
        rocket.mount("/", routes![list, get_one, create, replace, update, remove])
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("Student not found")
}

/// The `{id}` of `/students/{id}`, for the OpenAPI document (the handlers parse it with
/// [`path_int`], which keeps the parse error for the 422).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct StudentPath {
    /// The student's id
    #[param(minimum = -2147483648, maximum = 2147483647)]
    id: i32,
}

/// The 404 of every operation on `/students/{id}`, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[response(status = 404, description = "No student has this id")]
#[allow(dead_code)]
struct NotFound(ErrorBody);

/// A page of students, already JSON, with a `Link` to the next one when more follow.
pub struct StudentPage {
    body: Vec<u8>,
    next: Option<String>,
}

impl<'r> Responder<'r, 'static> for StudentPage {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        if let Some(next) = self.next {
            response.raw_header("Link", format!("<{next}>; rel=\"next\""));
        }
        // In one chunk: Rocket would otherwise hand a 1,000-row page (~190 KB) to the connection
        // 4 KiB at a time, through a channel.
        let size = self.body.len();
        response
            .header(ContentType::JSON)
            .sized_body(size, Cursor::new(self.body))
            .max_chunk_size(size)
            .ok()
    }
}

/// The query of the page after the one that ended at `after_id`, with the same filter and limit.
struct NextPage<'a> {
    after_id: i32,
    limit: i32,
    major: Option<&'a str>,
}

// Written out rather than derived (`UriDisplayQuery`), whose expansion clippy faults; a `None`
// major writes nothing.
impl UriDisplay<Query> for NextPage<'_> {
    fn fmt(&self, f: &mut Formatter<'_, Query>) -> std::fmt::Result {
        f.write_named_value("after_id", self.after_id)?;
        f.write_named_value("limit", self.limit)?;
        f.write_named_value("major", self.major)
    }
}

/// Lets `uri!(list(...))` take a [`NextPage`] for the route's `ListParams`.
impl<'a, 'r> FromUriParam<Query, NextPage<'a>> for form::Result<'r, ListParams> {
    type Target = NextPage<'a>;

    fn from_uri_param(page: NextPage<'a>) -> NextPage<'a> {
        page
    }
}

/// The URI of the page after the one that ended at `after_id`.
fn next_page_uri(params: &ListParams, after_id: i32) -> String {
    let page = NextPage {
        after_id,
        limit: *params.limit,
        major: params.major.0.as_deref(),
    };
    uri!(list(page)).to_string()
}

/// Students in id order, a page at a time.
///
/// Without parameters, the first 100. Follow the `Link: <...>; rel="next"` header for the next
/// page; it is absent on the last one. Pages are keyset-based (`after_id`), so a page deep in the
/// table is as fast as the first.
#[utoipa::path(
    get,
    path = "/students",
    operation_id = "list_students",
    tag = "students",
    params(ListParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The page, ordered by id", body = Vec<Student>,
            headers(("Link" = String, description = "`<uri>; rel=\"next\"` when more students follow"))),
        (status = 422, description = "A query parameter is invalid", body = ValidationErrorBody),
        ReadRefused,
        Unavailable,
    )
)]
#[get("/students?<params..>")]
pub async fn list(
    _can: CanRead,
    pool: &State<Pool>,
    params: form::Result<'_, ListParams>,
) -> Result<StudentPage, ApiError> {
    let params = params?;
    let (page, params) = db::run(pool, move |conn| {
        Student::page_json(conn, &params).map(|page| (page, params))
    })
    .await?;
    Ok(StudentPage {
        body: page.body,
        next: page.next_after.map(|last| next_page_uri(&params, last)),
    })
}

/// One student.
#[utoipa::path(
    get,
    path = "/students/{id}",
    operation_id = "get_student",
    tag = "students",
    params(StudentPath),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The student", body = Student),
        NotFound,
        (status = 422, description = "The id is not a 32-bit integer", body = ValidationErrorBody),
        ReadRefused,
        Unavailable,
    )
)]
#[get("/students/<id>")]
pub async fn get_one(
    _can: CanRead,
    pool: &State<Pool>,
    id: Result<i32, &str>,
) -> Result<Json<Student>, ApiError> {
    let id = path_int("id", id)?;
    let student = db::run(pool, move |conn| Student::find(conn, id)).await?;
    student.map(Json).ok_or_else(not_found)
}

/// Create a student.
///
/// Send an `Idempotency-Key` to make the request safe to retry: a retry with the same key and
/// body gets the first answer back and creates no second student (docs/api.md, "Retrying a
/// write").
#[utoipa::path(
    post,
    operation_id = "create_student",
    path = "/students",
    tag = "students",
    security(("bearer" = [])),
    params(IdempotencyParam),
    request_body(content = StudentCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` is its URI", body = Student,
            headers(
                ("Location" = String, description = "/students/{id} of the new student"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same Idempotency-Key"),
            )),
        BodyRejected,
        (status = 409, description = "A request with the same Idempotency-Key is still in progress", body = ErrorBody,
            headers(("Retry-After" = i32, description = "Seconds to wait"))),
        (status = 422, description = "A field or the Idempotency-Key is invalid, or the key was used with another request", body = ValidationErrorBody),
        Refused,
        Unavailable,
    )
)]
#[post("/students", data = "<body>")]
pub async fn create(
    can: CanWrite,
    pool: &State<Pool>,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBody<StudentCreate>, ApiError>,
) -> Result<Answer, ApiError> {
    let (IdempotencyKey(key), JsonBody(mut new)) = join_checks(key, body)?;
    // Of the input as sent: a retry tomorrow with `enrolled_on` left out is the same request.
    let claim = key.map(|key| Claim::new(can.token_id, key, "POST", "/students", &new));
    // Today in UTC, from the clock here rather than the column's DEFAULT CURRENT_DATE, which
    // depends on the session's TimeZone.
    new.enrolled_on
        .get_or_insert_with(|| chrono::Utc::now().date_naive());
    let written = db::run(pool, move |conn| match claim {
        None => Student::insert(conn, &new).map(Written::Fresh),
        Some(claim) => idempotency::write_once(conn, &claim, |conn| {
            Student::insert_keyed(conn, &new, &claim)
        }),
    })
    .await?;
    let (student, replayed) = match written {
        Written::Fresh(student) => (student, false),
        Written::Replayed(stored) => (Student::from_stored(&stored)?, true),
        Written::Reused => return Err(idempotency::reused()),
        Written::InFlight => return Err(idempotency::in_flight()),
    };
    Ok(Answer::created(
        uri!(get_one(student.id)).to_string(),
        &student,
        replayed,
    )?)
}

/// Replace every field of a student.
///
/// `email` is optional, as in `POST`: sent without it, the student no longer has one.
/// `enrolled_on` is optional too: sent without it, it stays as it was.
#[utoipa::path(
    put,
    operation_id = "replace_student",
    path = "/students/{id}",
    tag = "students",
    security(("bearer" = [])),
    params(StudentPath),
    request_body(content = StudentCreate, content_type = "application/json"),
    responses(
        (status = 200, description = "The student as now stored", body = Student),
        NotFound,
        BodyRejected,
        (status = 422, description = "The id or a field is invalid", body = ValidationErrorBody),
        Refused,
        Unavailable,
    )
)]
#[put("/students/<id>", data = "<body>")]
pub async fn replace(
    _can: CanWrite,
    pool: &State<Pool>,
    id: Result<i32, &str>,
    body: Result<JsonBody<StudentCreate>, ApiError>,
) -> Result<Json<Student>, ApiError> {
    let (id, JsonBody(fields)) = join_checks(path_int("id", id), body)?;
    let student = db::run(pool, move |conn| Student::replace(conn, id, &fields)).await?;
    student.map(Json).ok_or_else(not_found)
}

/// Change some fields of a student; the others stay as they are.
///
/// `"email": null` removes the email; leaving `email` out keeps it.
#[utoipa::path(
    patch,
    operation_id = "update_student",
    path = "/students/{id}",
    tag = "students",
    security(("bearer" = [])),
    params(StudentPath),
    request_body(content = StudentUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The student as now stored", body = Student),
        NotFound,
        BodyRejected,
        (status = 422, description = "The id or a field is invalid", body = ValidationErrorBody),
        Refused,
        Unavailable,
    )
)]
#[patch("/students/<id>", data = "<body>")]
pub async fn update(
    _can: CanWrite,
    pool: &State<Pool>,
    id: Result<i32, &str>,
    body: Result<JsonBody<StudentUpdate>, ApiError>,
) -> Result<Json<Student>, ApiError> {
    let (id, JsonBody(changes)) = join_checks(path_int("id", id), body)?;
    let student = db::run(pool, move |conn| Student::update(conn, id, &changes)).await?;
    student.map(Json).ok_or_else(not_found)
}

/// Delete a student.
#[utoipa::path(
    delete,
    operation_id = "delete_student",
    path = "/students/{id}",
    tag = "students",
    security(("bearer" = [])),
    params(StudentPath),
    responses(
        (status = 204, description = "Deleted"),
        NotFound,
        (status = 422, description = "The id is not a 32-bit integer", body = ValidationErrorBody),
        Refused,
        Unavailable,
    )
)]
#[delete("/students/<id>")]
pub async fn remove(
    _can: CanWrite,
    pool: &State<Pool>,
    id: Result<i32, &str>,
) -> Result<NoContent, ApiError> {
    let id = path_int("id", id)?;
    match db::run(pool, move |conn| Student::delete(conn, id)).await? {
        true => Ok(NoContent),
        false => Err(not_found()),
    }
}
