//! The `student` row and the queries over it. Handlers never build queries themselves; they call
//! these inside the pool's blocking task. A missing student is `Ok(None)` here, so the wording of
//! the 404 stays with the routes.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::connection::DefaultLoadingMode;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Binary, Date, Integer, Nullable, Text, Timestamptz};
use rocket::serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{ListParams, StudentCreate, StudentUpdate};
use crate::idempotency::Claim;
use crate::schema::student;

/// A student as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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
    #[schema(example = "2024-09-02")]
    pub enrolled_on: NaiveDate,
}

/// A `student` row as read. This binary serves from the expand step on, while the backfill (a
/// post-deploy migration) has not reached every old row, so `enrolled_on` may still be NULL
/// though `src/schema.rs` declares it as it ends, NOT NULL. It is read as nullable and falls
/// back to the backfill's own value, the creation day in UTC, so a row answers the same before
/// and after the backfill reaches it. The fallback is computed here rather than in SQL
/// (`coalesce(...)` in the select list, which measured the same): no SQL functions to declare,
/// and the query reads the column as it is.
///
/// A replayed answer is read back from the row as PostgreSQL's `row_to_json` wrote it, when the
/// idempotency key was stored ([`Student::insert_keyed`]), hence `Deserialize`.
#[derive(Queryable, Selectable, Deserialize)]
#[diesel(table_name = student, check_for_backend(Pg))]
#[serde(crate = "rocket::serde")]
struct Row {
    id: i32,
    first_name: String,
    last_name: String,
    major: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    email: Option<String>,
    #[diesel(select_expression = student::enrolled_on.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<student::enrolled_on>)]
    enrolled_on: Option<NaiveDate>,
}

impl Student {
    /// Appends the student as JSON to `out`, byte for byte what its `Serialize` writes (a unit
    /// test checks), for the pages: the keys go in as they are, where serde_json escapes each key
    /// again for every row. A 1,000-row page writes 8,000 of them.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        serde_json::to_writer(&mut *out, &self.id)?;
        for (key, text) in [
            (&b",\"first_name\":"[..], &self.first_name),
            (b",\"last_name\":", &self.last_name),
            (b",\"major\":", &self.major),
        ] {
            out.extend_from_slice(key);
            serde_json::to_writer(&mut *out, text)?;
        }
        out.extend_from_slice(b",\"created_at\":");
        super::rfc3339::serialize(
            &self.created_at,
            &mut serde_json::Serializer::new(&mut *out),
        )?;
        out.extend_from_slice(b",\"updated_at\":");
        super::rfc3339::serialize(
            &self.updated_at,
            &mut serde_json::Serializer::new(&mut *out),
        )?;
        out.extend_from_slice(b",\"email\":");
        serde_json::to_writer(&mut *out, &self.email)?;
        out.extend_from_slice(b",\"enrolled_on\":");
        super::rfc3339::serialize_day(
            &self.enrolled_on,
            &mut serde_json::Serializer::new(&mut *out),
        )?;
        out.push(b'}');
        Ok(())
    }
}

impl From<Row> for Student {
    fn from(row: Row) -> Self {
        Student {
            enrolled_on: (row.enrolled_on).unwrap_or_else(|| row.created_at.date_naive()),
            id: row.id,
            first_name: row.first_name,
            last_name: row.last_name,
            major: row.major,
            created_at: row.created_at,
            updated_at: row.updated_at,
            email: row.email,
        }
    }
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
            .select(Row::as_select())
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
            .select(Row::as_select())
            .first(conn)
            .map(Student::from)
            .optional()
    }

    pub fn insert(conn: &mut PgConnection, new: &StudentCreate) -> QueryResult<Student> {
        diesel::insert_into(student::table)
            .values(new)
            .returning(Row::as_returning())
            .get_result(conn)
            .map(Student::from)
    }

    /// The student as [`Student::insert`] stores it, and the idempotency key `claim` with it, in
    /// one statement: both or neither. A key already taken fails the statement with a unique
    /// violation of `idempotency_key_pkey`, or a lock timeout while the request that took it has
    /// not committed ([`crate::idempotency::write_once`] tells them apart).
    pub fn insert_keyed(
        conn: &mut PgConnection,
        new: &StudentCreate,
        claim: &Claim,
    ) -> QueryResult<Student> {
        InsertKeyed { new, claim }
            .get_result::<Row>(conn)
            .map(Student::from)
    }

    /// The student a stored answer showed: `row_to_json` of the row [`Student::insert_keyed`]
    /// inserted.
    pub fn from_stored(json: &str) -> QueryResult<Student> {
        serde_json::from_str::<Row>(json)
            .map(Student::from)
            .map_err(|err| diesel::result::Error::DeserializationError(Box::new(err)))
    }

    /// Every field replaced; the student as it now is.
    pub fn replace(
        conn: &mut PgConnection,
        id: i32,
        fields: &StudentCreate,
    ) -> QueryResult<Option<Student>> {
        diesel::update(student::table.find(id))
            .set(fields)
            .returning(Row::as_returning())
            .get_result(conn)
            .map(Student::from)
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
            .returning(Row::as_returning())
            .get_result(conn)
            .map(Student::from);
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

fn write_page(rows: impl Iterator<Item = QueryResult<Row>>, limit: i64) -> QueryResult<PageJson> {
    // A student is about 215 bytes of JSON (with an email and `enrolled_on`), and the rows are
    // all fetched already: one allocation for the page.
    let mut body = Vec::with_capacity(2 + 225 * rows.size_hint().0);
    body.push(b'[');
    let (mut written, mut last_id) = (0, None);
    for row in rows {
        let student = Student::from(row?);
        if written == limit {
            return finish(body, last_id);
        }
        if written > 0 {
            body.push(b',');
        }
        (student.write_json(&mut body))
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

/// The query of [`Student::insert_keyed`]: one statement, one round trip, as a keyless insert
/// costs, where a transaction around two inserts would cost five. Written out because diesel has
/// no data-modifying CTEs; a type of its own, so that diesel prepares it once per connection.
struct InsertKeyed<'a> {
    new: &'a StudentCreate,
    claim: &'a Claim,
}

/// What diesel caches the prepared [`InsertKeyed`] statement under.
struct InsertKeyedId;

impl QueryId for InsertKeyed<'_> {
    type QueryId = InsertKeyedId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for InsertKeyed<'_> {
    type SqlType = (
        Integer,
        Text,
        Text,
        Text,
        Timestamptz,
        Timestamptz,
        Nullable<Text>,
        Nullable<Date>,
    );
}

impl RunQueryDsl<PgConnection> for InsertKeyed<'_> {}

impl QueryFragment<Pg> for InsertKeyed<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        const COLUMNS: &str =
            "id, first_name, last_name, major, created_at, updated_at, email, enrolled_on";
        out.push_sql(
            "WITH s AS (INSERT INTO student (first_name, last_name, major, email, enrolled_on) \
             VALUES (",
        );
        out.push_bind_param::<Text, _>(&self.new.first_name)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.new.last_name)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.new.major)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.new.email)?;
        out.push_sql(", coalesce(");
        out.push_bind_param::<Nullable<Date>, _>(&self.new.enrolled_on)?;
        out.push_sql(", CURRENT_DATE)) RETURNING ");
        out.push_sql(COLUMNS);
        // The wait for a twin that took the key and has not committed, bounded once the student
        // is inserted: `w` reads `s`, so the student's own insert waits as a keyless one does.
        // Local to the statement's transaction, which is the statement.
        out.push_sql(
            "), w AS (SELECT set_config('lock_timeout', '100ms', true) FROM s), \
             k AS (INSERT INTO idempotency_key (token_id, key, fingerprint, resource) SELECT ",
        );
        out.push_bind_param::<Integer, _>(&self.claim.token_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.claim.key.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(&self.claim.fingerprint[..])?;
        out.push_sql(", row_to_json(s)::text FROM s, w) SELECT ");
        out.push_sql(COLUMNS);
        out.push_sql(" FROM s");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_page_row_is_written_byte_for_byte_as_serde_writes_the_student() {
        let at = |secs, nanos| Utc.timestamp_opt(secs, nanos).unwrap();
        let texts = [
            "Ada",
            "Zoë \"Zed\" O'Brien\\",
            "tab\tnew\nline\u{1}\u{7f}",
            "日本文学 😀",
            "</script>",
        ];
        for (n, text) in texts.iter().enumerate() {
            let student = Student {
                id: [i32::MIN, -1, 0, 7, i32::MAX][n],
                first_name: (*text).to_owned(),
                last_name: texts[(n + 1) % texts.len()].to_owned(),
                major: texts[(n + 2) % texts.len()].to_owned(),
                created_at: at(
                    1_700_000_000 + n as i64,
                    [0, 1_000_000, 1_000, 1, 999_999_999][n],
                ),
                updated_at: [DateTime::<Utc>::MIN_UTC, at(0, 0), DateTime::<Utc>::MAX_UTC][n % 3],
                email: (n % 2 == 0).then(|| format!("{text}@example.org")),
                enrolled_on: [NaiveDate::MIN, NaiveDate::MAX, NaiveDate::default()][n % 3],
            };
            let mut written = Vec::new();
            student.write_json(&mut written).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&student).unwrap()
            );
        }
    }
}
