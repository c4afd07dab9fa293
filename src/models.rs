//! Row types of the `student` table and the queries over it.

use diesel::prelude::*;
use rocket::serde::Serialize;

use crate::schema::student;

/// One student as stored and as served.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = student, check_for_backend(diesel::pg::Pg))]
#[serde(crate = "rocket::serde")]
pub struct Student {
    pub id: i32,
    pub first_name: String,
    pub last_name: String,
    pub major: String,
}

impl Student {
    /// Every student, in id order so that the answer is stable from one call to the next.
    pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<Student>> {
        student::table
            .select(Student::as_select())
            .order_by(student::id)
            .load(conn)
    }
}
