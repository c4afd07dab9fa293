//! `/students`: list, read, create, replace, change and delete students.

use rocket::http::Header;
use rocket::response::status::{Created, NoContent};
use rocket::response::{self, Responder};
use rocket::serde::Deserialize;
use rocket::serde::json::Json;
use rocket::{Request, Route, State, delete, get, patch, post, put, routes};

use crate::db::{self, Pool};
use crate::error::{ApiError, BodyRejected, HttpError, HttpValidationError, Unavailable};
use crate::models::{PageRequest, Student};
use crate::validation::{self, JsonObject, StudentInput};

pub fn routes() -> Vec<Route> {
    routes![list, get_one, create, replace, update, remove]
}

// These two describe request bodies in the OpenAPI document only. Requests are read through
// `JsonObject` and `StudentInput`, which enforce the same rules and report every broken one at once.

/// A new student, or every field of an existing one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(crate = "rocket::serde", deny_unknown_fields)]
#[allow(dead_code)]
pub struct StudentCreate {
    #[schema(schema_with = validation::text_schema)]
    first_name: String,
    #[schema(schema_with = validation::text_schema)]
    last_name: String,
    #[schema(schema_with = validation::text_schema)]
    major: String,
}

/// Any subset of a student's fields, with the same rules as `StudentCreate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(crate = "rocket::serde", deny_unknown_fields)]
#[allow(dead_code)]
pub struct StudentUpdate {
    #[schema(schema_with = validation::text_schema)]
    first_name: Option<String>,
    #[schema(schema_with = validation::text_schema)]
    last_name: Option<String>,
    #[schema(schema_with = validation::text_schema)]
    major: Option<String>,
}

/// A page of students, with a `Link` to the next one when more follow.
pub struct StudentPage {
    students: Vec<Student>,
    next: Option<String>,
}

impl<'r> Responder<'r, 'static> for StudentPage {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Json(self.students).respond_to(request)?;
        if let Some(next) = self.next {
            response.set_header(Header::new("Link", format!("<{next}>; rel=\"next\"")));
        }
        Ok(response)
    }
}

/// The URI of the page after the one that ended at `last_id`, with the same filter and limit.
fn next_page_uri(request: &PageRequest, last_id: i32) -> String {
    let mut uri = format!("/students?after_id={last_id}&limit={}", request.limit);
    if let Some(major) = &request.major {
        uri.push_str("&major=");
        uri.push_str(rocket::http::RawStr::new(major).percent_encode().as_str());
    }
    uri
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
    params(
        ("major" = Option<String>, Query, description = "Only students with exactly this major", pattern = r"^[^\u0000]*$"),
        ("after_id" = Option<i32>, Query, description = "Only students with a greater id: the last id of the previous page", minimum = -2147483648, maximum = 2147483647),
        ("limit" = Option<i32>, Query, description = "Page size, 1 to 1000; 100 when absent", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The page, ordered by id", body = Vec<Student>,
            headers(("Link" = String, description = "`<uri>; rel=\"next\"` when more students follow"))),
        (status = 422, description = "A query parameter is invalid", body = HttpValidationError),
        Unavailable,
    )
)]
#[get("/students?<major>&<after_id>&<limit>")]
pub async fn list(
    pool: &State<Pool>,
    major: Vec<&str>,
    after_id: Vec<&str>,
    limit: Vec<&str>,
) -> Result<StudentPage, ApiError> {
    // Each parameter is taken as a list so that one given twice is an error, not silently ignored
    // (which is what Rocket does with `Option` when a value fails to parse).
    let request = validation::page_request(&major, &after_id, &limit)?;
    let (page, request) = db::connect(pool)
        .await?
        .query(move |conn| Student::page(conn, &request).map(|page| (page, request)))
        .await?;
    let next = match page.students.last() {
        Some(last) if page.more => Some(next_page_uri(&request, last.id)),
        _ => None,
    };
    Ok(StudentPage {
        students: page.students,
        next,
    })
}

/// One student.
#[utoipa::path(
    get,
    path = "/students/{id}",
    operation_id = "get_student",
    tag = "students",
    params(("id" = i32, Path, description = "The student's id", minimum = -2147483648, maximum = 2147483647)),
    responses(
        (status = 200, description = "The student", body = Student),
        (status = 404, description = "No student has this id", body = HttpError),
        (status = 422, description = "The id is not a 32-bit integer", body = HttpValidationError),
        Unavailable,
    )
)]
#[get("/students/<id>")]
pub async fn get_one(pool: &State<Pool>, id: &str) -> Result<Json<Student>, ApiError> {
    let id = validation::student_id(id)?;
    let db = db::connect(pool).await?;
    Ok(Json(db.query(move |conn| Student::find(conn, id)).await?))
}

/// Create a student.
#[utoipa::path(
    post,
    operation_id = "create_student",
    path = "/students",
    tag = "students",
    request_body(content = StudentCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` is its URI", body = Student,
            headers(("Location" = String, description = "/students/{id} of the new student"))),
        BodyRejected,
        (status = 422, description = "A field is missing, unknown or breaks its rules", body = HttpValidationError),
        Unavailable,
    )
)]
#[post("/students", data = "<body>")]
pub async fn create(
    pool: &State<Pool>,
    body: Result<JsonObject, ApiError>,
) -> Result<Created<Json<Student>>, ApiError> {
    let input = StudentInput::complete(&body?)?;
    let student = db::connect(pool)
        .await?
        .query(move |conn| {
            let new = input.as_new().expect("complete input has every field");
            Student::insert(conn, &new)
        })
        .await?;
    Ok(Created::new(format!("/students/{}", student.id)).body(Json(student)))
}

/// Replace every field of a student.
#[utoipa::path(
    put,
    operation_id = "replace_student",
    path = "/students/{id}",
    tag = "students",
    params(("id" = i32, Path, description = "The student's id", minimum = -2147483648, maximum = 2147483647)),
    request_body(content = StudentCreate, content_type = "application/json"),
    responses(
        (status = 200, description = "The student as now stored", body = Student),
        (status = 404, description = "No student has this id", body = HttpError),
        BodyRejected,
        (status = 422, description = "The id or a field is invalid", body = HttpValidationError),
        Unavailable,
    )
)]
#[put("/students/<id>", data = "<body>")]
pub async fn replace(
    pool: &State<Pool>,
    id: &str,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<Student>, ApiError> {
    change(pool, id, body, StudentInput::complete).await
}

/// Change some fields of a student; the others stay as they are.
#[utoipa::path(
    patch,
    operation_id = "update_student",
    path = "/students/{id}",
    tag = "students",
    params(("id" = i32, Path, description = "The student's id", minimum = -2147483648, maximum = 2147483647)),
    request_body(content = StudentUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The student as now stored", body = Student),
        (status = 404, description = "No student has this id", body = HttpError),
        BodyRejected,
        (status = 422, description = "The id or a field is invalid", body = HttpValidationError),
        Unavailable,
    )
)]
#[patch("/students/<id>", data = "<body>")]
pub async fn update(
    pool: &State<Pool>,
    id: &str,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<Student>, ApiError> {
    change(pool, id, body, StudentInput::partial).await
}

/// What `PUT` and `PATCH` share: check the id and the body together, then apply the change.
async fn change(
    pool: &Pool,
    id: &str,
    body: Result<JsonObject, ApiError>,
    parse: fn(&JsonObject) -> Result<StudentInput, ApiError>,
) -> Result<Json<Student>, ApiError> {
    let (id, input) = validation::id_and_body(id, body, parse)?;
    let db = db::connect(pool).await?;
    Ok(Json(
        db.query(move |conn| Student::update(conn, id, &input.as_changes()))
            .await?,
    ))
}

/// Delete a student.
#[utoipa::path(
    delete,
    operation_id = "delete_student",
    path = "/students/{id}",
    tag = "students",
    params(("id" = i32, Path, description = "The student's id", minimum = -2147483648, maximum = 2147483647)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No student has this id", body = HttpError),
        (status = 422, description = "The id is not a 32-bit integer", body = HttpValidationError),
        Unavailable,
    )
)]
#[delete("/students/<id>")]
pub async fn remove(pool: &State<Pool>, id: &str) -> Result<NoContent, ApiError> {
    let id = validation::student_id(id)?;
    db::connect(pool)
        .await?
        .query(move |conn| Student::delete(conn, id))
        .await?;
    Ok(NoContent)
}
