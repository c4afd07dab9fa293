//! The `student` row and the queries over it. Handlers never build queries themselves; they call
//! these inside the pool's blocking task. A missing student is `Ok(None)` here, so the wording of
//! the 404 stays with the routes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rocket::serde::Serialize;
use utoipa::ToSchema;

use super::input::{ListParams, StudentCreate, StudentUpdate};
use crate::schema::student;

/// A student as stored and as served.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = student, check_for_backend(diesel::pg::Pg))]
#[serde(crate = "rocket::serde")]
pub struct Student {
    #[schema(example = 1)]
    pub id: i32,
    #[schema(example = "Alice")]
    pub first_name: String,
    #[schema(example = "Johnson")]
    pub last_name: String,
    #[schema(example = "Computer Science")]
    pub major: String,
    /// When the student was created.
    #[serde(serialize_with = "super::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// When any field last changed; kept by the `set_updated_at` trigger.
    #[serde(serialize_with = "super::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// One page of students, and whether more follow it.
#[derive(Debug)]
pub struct Page {
    pub students: Vec<Student>,
    pub more: bool,
}

impl Student {
    /// A page in id order. Keyset pagination (`id > after_id`), never OFFSET, so a page deep in
    /// the table costs what the first one does: an index range scan of `limit` rows.
    pub fn page(conn: &mut PgConnection, params: &ListParams) -> QueryResult<Page> {
        let limit = i64::from(*params.limit);
        // Two fixed query shapes rather than a boxed query, because diesel caches the prepared
        // statement of a fixed shape per connection and re-plans a boxed one on every call.
        let query = student::table
            .select(Student::as_select())
            .filter(student::id.gt(*params.after_id))
            .order_by(student::id)
            // One more than asked tells whether another page follows, without a COUNT.
            .limit(limit + 1);
        let mut students = match &params.major.0 {
            Some(major) => query.filter(student::major.eq(major)).load(conn)?,
            None => query.load(conn)?,
        };
        let more = students.len() as i64 > limit;
        students.truncate(limit as usize);
        Ok(Page { students, more })
    }

    pub fn find(conn: &mut PgConnection, id: i32) -> QueryResult<Option<Student>> {
        student::table
            .find(id)
            .select(Student::as_select())
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut PgConnection, new: &StudentCreate) -> QueryResult<Student> {
        diesel::insert_into(student::table)
            .values(new)
            .returning(Student::as_returning())
            .get_result(conn)
    }

    /// Every field replaced; the student as it now is.
    pub fn replace(
        conn: &mut PgConnection,
        id: i32,
        fields: &StudentCreate,
    ) -> QueryResult<Option<Student>> {
        diesel::update(student::table.find(id))
            .set(fields)
            .returning(Student::as_returning())
            .get_result(conn)
            .optional()
    }

    /// The fields given changed; the student as it now is.
    pub fn update(
        conn: &mut PgConnection,
        id: i32,
        changes: &StudentUpdate,
    ) -> QueryResult<Option<Student>> {
        let updated = diesel::update(student::table.find(id))
            .set(changes)
            .returning(Student::as_returning())
            .get_result(conn);
        match updated.optional_empty_changeset().optional()? {
            // No field given: diesel refuses an UPDATE without columns, and changing nothing is
            // just a read.
            Some(None) => Student::find(conn, id),
            found => Ok(found.flatten()),
        }
    }

    /// Whether there was such a student to delete.
    pub fn delete(conn: &mut PgConnection, id: i32) -> QueryResult<bool> {
        let deleted = diesel::delete(student::table.find(id)).execute(conn)?;
        Ok(deleted > 0)
    }
}
