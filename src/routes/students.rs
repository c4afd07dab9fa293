//! `/students`.

use rocket::serde::json::Json;
use rocket::{Route, get, routes};

use crate::db::Db;
use crate::error::ApiError;
use crate::models::Student;

pub fn routes() -> Vec<Route> {
    routes![list]
}

/// Every student, ordered by id.
#[get("/students")]
async fn list(db: Db) -> Result<Json<Vec<Student>>, ApiError> {
    Ok(Json(db.run(Student::all).await?))
}
