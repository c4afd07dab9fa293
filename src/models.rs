//! Row types of the `student` table and the queries over it. Handlers never build queries
//! themselves; they call these functions inside `db.run`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rocket::serde::Serialize;
use utoipa::ToSchema;

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
    pub created_at: DateTime<Utc>,
    /// When any field last changed; kept by the `set_updated_at` trigger.
    pub updated_at: DateTime<Utc>,
}

/// A student to insert; the database assigns `id` and the timestamps.
#[derive(Debug, Insertable)]
#[diesel(table_name = student)]
pub struct NewStudent<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub major: &'a str,
}

/// The fields to change; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = student)]
pub struct StudentChanges<'a> {
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub major: Option<&'a str>,
}

impl StudentChanges<'_> {
    fn is_empty(&self) -> bool {
        self.first_name.is_none() && self.last_name.is_none() && self.major.is_none()
    }
}

/// Which slice of the table `GET /students` wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Only students whose major is exactly this.
    pub major: Option<String>,
    /// Only students with an id above this one: where the previous page ended.
    pub after_id: Option<i32>,
    /// At most this many students.
    pub limit: i64,
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
    pub fn page(conn: &mut PgConnection, request: &PageRequest) -> QueryResult<Page> {
        // Two fixed query shapes rather than a boxed query, because diesel caches the prepared
        // statement of a fixed shape per connection and re-plans a boxed one on every call. The
        // first page is `id > i32::MIN`: the same shape, the same index scan.
        let query = student::table
            .select(Student::as_select())
            .filter(student::id.gt(request.after_id.unwrap_or(i32::MIN)))
            .order_by(student::id)
            // One more than asked tells whether another page follows, without a COUNT.
            .limit(request.limit + 1);
        let mut students = match &request.major {
            Some(major) => query.filter(student::major.eq(major)).load(conn)?,
            None => query.load(conn)?,
        };
        let more = students.len() as i64 > request.limit;
        students.truncate(request.limit as usize);
        Ok(Page { students, more })
    }

    /// The student with this id, or `NotFound`.
    pub fn find(conn: &mut PgConnection, id: i32) -> QueryResult<Student> {
        student::table
            .find(id)
            .select(Student::as_select())
            .first(conn)
    }

    pub fn insert(conn: &mut PgConnection, new: &NewStudent<'_>) -> QueryResult<Student> {
        diesel::insert_into(student::table)
            .values(new)
            .returning(Student::as_returning())
            .get_result(conn)
    }

    /// Applies `changes` and returns the student as it now is, or `NotFound`.
    pub fn update(
        conn: &mut PgConnection,
        id: i32,
        changes: &StudentChanges<'_>,
    ) -> QueryResult<Student> {
        if changes.is_empty() {
            // An UPDATE needs at least one column; changing nothing is just a read.
            return Student::find(conn, id);
        }
        diesel::update(student::table.find(id))
            .set(changes)
            .returning(Student::as_returning())
            .get_result(conn)
    }

    /// Deletes the student, or reports `NotFound` when there was none.
    pub fn delete(conn: &mut PgConnection, id: i32) -> QueryResult<()> {
        match diesel::delete(student::table.find(id)).execute(conn)? {
            0 => Err(diesel::result::Error::NotFound),
            _ => Ok(()),
        }
    }
}
