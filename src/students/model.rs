//! The `student` row and the queries over it. Handlers never build queries themselves; they call
//! these inside the pool's blocking task. A missing student is `Ok(None)` here, so the wording of
//! the 404 stays with the routes.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::connection::DefaultLoadingMode;
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
    /// `null` when none was given.
    #[schema(example = "alice.johnson@example.edu")]
    pub email: Option<String>,
    /// The day the student enrolled (`YYYY-MM-DD`); for students created before the field
    /// existed, the day they were created, in UTC.
    #[serde(serialize_with = "super::rfc3339::serialize_day")]
    #[diesel(select_expression = enrolled_on_or_created_day())]
    #[diesel(select_expression_type = EnrolledOnOrCreatedDay)]
    #[schema(example = "2024-09-02")]
    pub enrolled_on: NaiveDate,
}

// A row the backfill (a post-deploy migration) has not reached yet still holds NULL, while
// `src/schema.rs` declares the column as it ends, NOT NULL. This binary serves from the expand step
// on, so it reads the column with the backfill's own fallback, the creation day in UTC: the answer
// is the same before and after the backfill reaches a row. Declared functions rather than `sql()`,
// so the query keeps one text and diesel keeps its prepared statement.
mod sql {
    use diesel::sql_types::{Date, Nullable, Text, Timestamp, Timestamptz};

    diesel::define_sql_function! {
        fn coalesce(value: Nullable<Date>, fallback: Date) -> Date;
    }
    diesel::define_sql_function! {
        fn timezone(zone: Text, at: Timestamptz) -> Timestamp;
    }
    diesel::define_sql_function! {
        fn date(at: Timestamp) -> Date;
    }
}

type EnrolledOnOrCreatedDay = sql::coalesce<
    diesel::dsl::Nullable<student::enrolled_on>,
    sql::date<
        sql::timezone<
            diesel::dsl::AsExprOf<&'static str, diesel::sql_types::Text>,
            student::created_at,
        >,
    >,
>;

fn enrolled_on_or_created_day() -> EnrolledOnOrCreatedDay {
    sql::coalesce(
        student::enrolled_on.nullable(),
        sql::date(sql::timezone("UTC", student::created_at)),
    )
}

/// One page of students as the JSON array the API serves, and the last id on it when another
/// page follows.
#[derive(Debug)]
pub struct PageJson {
    pub body: Vec<u8>,
    pub next_after: Option<i32>,
}

impl Student {
    /// A page in id order, as JSON. Keyset pagination (`id > after_id`), never OFFSET, so a page
    /// deep in the table costs what the first one does: an index range scan of `limit` rows.
    ///
    /// The rows are serialised one by one as they are read, here on the query's blocking thread,
    /// instead of collected into a `Vec<Student>` first: a 1,000-row page then allocates one
    /// buffer rather than some 3,000 strings that live until the response is written.
    pub fn page_json(conn: &mut PgConnection, params: &ListParams) -> QueryResult<PageJson> {
        let limit = i64::from(*params.limit);
        // Two fixed query shapes rather than a boxed query, because diesel caches the prepared
        // statement of a fixed shape per connection and re-plans a boxed one on every call.
        let query = student::table
            .select(Student::as_select())
            .filter(student::id.gt(*params.after_id))
            .order_by(student::id)
            // One more than asked tells whether another page follows, without a COUNT.
            .limit(limit + 1);
        match &params.major.0 {
            Some(major) => write_page(
                query
                    .filter(student::major.eq(major))
                    .load_iter::<_, DefaultLoadingMode>(conn)?,
                limit,
            ),
            None => write_page(query.load_iter::<_, DefaultLoadingMode>(conn)?, limit),
        }
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

fn write_page(
    rows: impl Iterator<Item = QueryResult<Student>>,
    limit: i64,
) -> QueryResult<PageJson> {
    // A student is about 190 bytes of JSON, and the rows are all fetched already.
    let mut body = Vec::with_capacity(2 + 200 * rows.size_hint().0);
    body.push(b'[');
    let (mut written, mut last_id) = (0, None);
    for student in rows {
        let student = student?;
        if written == limit {
            return finish(body, last_id);
        }
        if written > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &student)
            .map_err(|err| diesel::result::Error::SerializationError(err.into()))?;
        (written, last_id) = (written + 1, Some(student.id));
    }
    finish(body, None)
}

/// Closes the array; `next_after` is the last id when another page follows.
fn finish(mut body: Vec<u8>, next_after: Option<i32>) -> QueryResult<PageJson> {
    body.push(b']');
    Ok(PageJson { body, next_after })
}
