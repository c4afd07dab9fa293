//! `Idempotency-Key` on `POST /students`: a client that sent a write and lost the answer (a
//! timeout, a 503 in a failover, a dropped connection) retries it with the same key and gets the
//! first answer back instead of writing twice (docs/api.md, "Retrying a write").
//!
//! The header is the IETF httpapi draft's; its semantics are Stripe's. A key belongs to the token
//! that sent it. Its answer is stored in the same transaction as the write, so a committed write
//! always has its answer stored and a failed one never does. The write goes first and the key is
//! claimed last, with the answer in the same statement: a key row never exists without its answer,
//! and a twin request waits on it only from the claim to the commit.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_dsl::methods::FilterDsl;
use diesel::result::Error as DieselError;
use diesel::upsert::excluded;
use rand::Rng;
use rocket::fairing::AdHoc;
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::tokio::task::spawn_blocking;
use rocket::tokio::time::sleep;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::http::{ApiError, FieldError, Problem};
use crate::migrate::waits::is_lock_timeout;
use crate::schema::idempotency_key;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";

/// How long a key's answer is kept: a retry later than that writes again.
const KEPT: TimeDelta = TimeDelta::hours(24);

/// How long a request waits for a twin in flight (the same key, not yet committed) before it
/// answers 409: long enough for a twin that is about to commit, short enough not to hold a pooled
/// connection while the twin is slow.
const TWIN_WAIT: &str = "SET LOCAL lock_timeout = '100ms'";

/// Keys deleted per statement of a sweep, so that no statement holds many row locks or runs long.
const SWEEP_BATCH: i64 = 1_000;

/// How often each replica sweeps expired keys.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// A key as the client chose it: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The header's value: the draft's quoted string (`"8e03978e-..."`), or the bare key most
    /// clients send (`8e03978e-...`). A quoted value without escapes is unquoted; any other
    /// value is the key as it is, so both forms of one key are the same key.
    pub fn parse(value: &str) -> Result<Key, Problem> {
        let key = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) if !inner.contains(['"', '\\']) => inner,
            _ => value,
        };
        if key.is_empty() || key.len() > 255 {
            return Err(Problem::new(
                "The Idempotency-Key must be 1 to 255 characters long",
                "idempotency_key_format",
            ));
        }
        if !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(Problem::new(
                "The Idempotency-Key must be printable ASCII (a UUID, say)",
                "idempotency_key_format",
            ));
        }
        Ok(Key(key.to_owned()))
    }
}

fn header_error(problem: Problem) -> ApiError {
    ApiError::Invalid(vec![FieldError::new(&["header", HEADER], problem)])
}

/// The request's `Idempotency-Key`, if it sent one. A malformed one, or two, is a 422 the handler
/// reports together with the body's problems.
pub struct IdempotencyKey(pub Option<Key>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IdempotencyKey {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let mut values = request.headers().get(HEADER);
        let parsed = match (values.next(), values.next()) {
            (None, _) => Ok(IdempotencyKey(None)),
            (Some(value), None) => Key::parse(value).map(|key| IdempotencyKey(Some(key))),
            (Some(_), Some(_)) => Err(Problem::new(
                "Send one Idempotency-Key, not several",
                "idempotency_key_format",
            )),
        };
        match parsed {
            Ok(key) => Outcome::Success(key),
            Err(problem) => Outcome::Error((Status::UnprocessableEntity, header_error(problem))),
        }
    }
}

/// The header, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyParam {
    /// A key of the client's choosing, unique per write (a UUID): a retry with the same key and
    /// the same request within 24 hours gets the first answer, with `Idempotent-Replayed: true`,
    /// and writes nothing. The draft's quoted form (`"<key>"`) is the same key.
    #[param(rename = "Idempotency-Key", value_type = String, required = false,
        min_length = 1, max_length = 255, pattern = "^[ -~]*[!-~][ -~]*$")]
    idempotency_key: Option<String>,
}

/// The write a key stands for: the token that sent it, the key, and the SHA-256 of the method,
/// the path and the parsed input, so reordered JSON or other whitespace is the same request.
pub struct Claim {
    token_id: i32,
    key: Key,
    fingerprint: [u8; 32],
}

impl Claim {
    pub fn new(token_id: i32, key: Key, method: &str, path: &str, input: &impl Serialize) -> Self {
        let mut hash = Sha256::new();
        for part in [method, " ", path, "\n"] {
            hash.update(part.as_bytes());
        }
        // Serializing a derived `Serialize` of strings, numbers and dates cannot fail.
        hash.update(serde_json::to_vec(input).expect("the input serializes"));
        Claim {
            token_id,
            key,
            fingerprint: hash.finalize().into(),
        }
    }
}

/// A write's answer, as sent and as stored for its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    /// JSON.
    pub body: String,
    /// Sent before, to the request that first used the key.
    pub replayed: bool,
}

impl Answer {
    /// `201 Created` with `location` and `body` as JSON.
    pub fn created(location: String, body: &impl Serialize) -> QueryResult<Answer> {
        Ok(Answer {
            status: 201,
            location: Some(location),
            body: serde_json::to_string(body)
                .map_err(|err| DieselError::SerializationError(Box::new(err)))?,
            replayed: false,
        })
    }
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response
            .status(Status::from_code(self.status).unwrap_or(Status::Ok))
            .header(rocket::http::ContentType::JSON)
            .sized_body(self.body.len(), std::io::Cursor::new(self.body));
        if let Some(location) = self.location {
            response.header(Header::new("Location", location));
        }
        if self.replayed {
            response.header(Header::new("Idempotent-Replayed", "true"));
        }
        response.ok()
    }
}

/// What became of a keyed write.
#[derive(Debug)]
pub enum Written {
    /// Written now, or earlier under the same key and request: the answer to send.
    Answer(Answer),
    /// The key was used, within [`KEPT`], for another request.
    Reused,
    /// A request with the same key is in flight and did not commit within the wait.
    InFlight,
}

impl Written {
    pub fn into_result(self) -> Result<Answer, ApiError> {
        match self {
            Written::Answer(answer) => Ok(answer),
            Written::Reused => Err(header_error(Problem::new(
                "This Idempotency-Key was used with another request; use a new key for a new write",
                "idempotency_key_reused",
            ))),
            Written::InFlight => Err(ApiError::Conflict(
                "A request with this Idempotency-Key is still in progress; retry it shortly",
            )),
        }
    }
}

/// Why a keyed write's transaction ends without committing.
enum Abandoned {
    /// The key is taken: the write is undone and the stored answer read instead.
    Taken,
    Failed(DieselError),
}

impl From<DieselError> for Abandoned {
    fn from(err: DieselError) -> Self {
        Abandoned::Failed(err)
    }
}

/// Runs `write` once for `claim`: in one transaction, the write, then the key with the write's
/// answer. When the key already holds an answer younger than [`KEPT`], the write is rolled back and
/// that answer is returned, if it was given to the same request.
pub fn write_once(
    conn: &mut PgConnection,
    claim: &Claim,
    write: impl FnOnce(&mut PgConnection) -> QueryResult<Answer>,
) -> QueryResult<Written> {
    let written = conn.transaction(|conn| {
        let answer = write(conn)?;
        conn.batch_execute(TWIN_WAIT)?;
        let stored = (
            idempotency_key::token_id.eq(claim.token_id),
            idempotency_key::key.eq(&claim.key.0),
            idempotency_key::fingerprint.eq(&claim.fingerprint[..]),
            idempotency_key::status.eq(i32::from(answer.status)),
            idempotency_key::location.eq(answer.location.as_deref()),
            idempotency_key::body.eq(&answer.body),
        );
        // An expired key is taken over, in the same statement, so no sweep has to come first.
        // (`FilterDsl` by path: the upsert's WHERE, which the prelude's `filter` does not reach.)
        use idempotency_key as k;
        let upsert = diesel::insert_into(k::table)
            .values(stored)
            .on_conflict((k::token_id, k::key))
            .do_update()
            .set((
                k::fingerprint.eq(excluded(k::fingerprint)),
                k::status.eq(excluded(k::status)),
                k::location.eq(excluded(k::location)),
                k::body.eq(excluded(k::body)),
                k::created_at.eq(diesel::dsl::now),
            ));
        let claimed =
            FilterDsl::filter(upsert, k::created_at.lt(Utc::now() - KEPT)).execute(conn)?;
        match claimed {
            1 => Ok(answer),
            _ => Err(Abandoned::Taken),
        }
    });
    match written {
        Ok(answer) => Ok(Written::Answer(answer)),
        Err(Abandoned::Failed(err)) if is_lock_timeout(&err) => Ok(Written::InFlight),
        Err(Abandoned::Failed(err)) => Err(err),
        Err(Abandoned::Taken) => stored(conn, claim),
    }
}

/// The answer stored under `claim`'s key, if it was given to the same request.
fn stored(conn: &mut PgConnection, claim: &Claim) -> QueryResult<Written> {
    let row = idempotency_key::table
        .find((claim.token_id, &claim.key.0))
        .select((
            idempotency_key::fingerprint,
            idempotency_key::status,
            idempotency_key::location,
            idempotency_key::body,
        ))
        .first::<(Vec<u8>, i32, Option<String>, String)>(conn)
        .optional()?;
    Ok(match row {
        Some((fingerprint, status, location, body)) if fingerprint == claim.fingerprint => {
            Written::Answer(Answer {
                status: u16::try_from(status).unwrap_or(200),
                location,
                body,
                replayed: true,
            })
        }
        Some(_) => Written::Reused,
        // Swept between the claim and this read: as if still in flight, so the retry claims it.
        None => Written::InFlight,
    })
}

/// Deletes the keys older than [`KEPT`], [`SWEEP_BATCH`] at a time, skipping rows another
/// replica's sweep holds: the number deleted.
pub fn sweep(conn: &mut PgConnection) -> QueryResult<usize> {
    let mut deleted = 0;
    loop {
        let batch = diesel::sql_query(
            "DELETE FROM idempotency_key WHERE ctid = ANY (ARRAY( \
               SELECT ctid FROM idempotency_key WHERE created_at < $1 \
               LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(Utc::now() - KEPT)
        .bind::<diesel::sql_types::BigInt, _>(SWEEP_BATCH)
        .execute(conn)?;
        deleted += batch;
        if i64::try_from(batch).unwrap_or(i64::MAX) < SWEEP_BATCH {
            return Ok(deleted);
        }
    }
}

/// Sweeps expired keys every [`SWEEP_EVERY`] on a connection of its own, so it never waits for or
/// holds one of the requests'. Replicas start at a random point of the interval, so they do not
/// sweep together.
pub fn stage(url: String) -> AdHoc {
    AdHoc::on_liftoff("Idempotency key sweeper", move |_| {
        Box::pin(async move {
            rocket::tokio::spawn(async move {
                let first = rand::thread_rng().gen_range(Duration::ZERO..SWEEP_EVERY);
                sleep(first).await;
                loop {
                    let url = url.clone();
                    let swept = spawn_blocking(move || -> Result<usize, String> {
                        let mut conn =
                            PgConnection::establish(&url).map_err(|err| err.to_string())?;
                        sweep(&mut conn).map_err(|err| err.to_string())
                    })
                    .await;
                    match swept {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => log::info!("deleted {n} expired idempotency key(s)"),
                        Ok(Err(err)) => log::warn!("cannot sweep expired idempotency keys: {err}"),
                        Err(err) => log::warn!("the idempotency key sweep did not finish: {err}"),
                    }
                    sleep(SWEEP_EVERY).await;
                }
            });
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_key_and_a_bare_key_are_the_same_key() {
        assert_eq!(Key::parse("\"abc-1\""), Key::parse("abc-1"));
        assert_eq!(Key::parse("abc-1").map(|k| k.0), Ok("abc-1".to_owned()));
        // Not a plain quoted string: taken as it is.
        assert_eq!(
            Key::parse("\"a\\\"b\"").map(|k| k.0),
            Ok("\"a\\\"b\"".to_owned())
        );
        assert_eq!(Key::parse("\"a").map(|k| k.0), Ok("\"a".to_owned()));
    }

    #[test]
    fn a_key_is_1_to_255_printable_ascii_characters() {
        assert!(Key::parse(&"k".repeat(255)).is_ok());
        for bad in [
            String::new(),
            "\"\"".to_owned(),
            "k".repeat(256),
            "clé".to_owned(),
            "a\tb".to_owned(),
        ] {
            let err = Key::parse(&bad).expect_err(&bad);
            assert_eq!(err.kind, "idempotency_key_format", "{bad}");
        }
    }

    #[test]
    fn the_fingerprint_is_the_method_the_path_and_the_input() {
        let key = || Key::parse("k").unwrap();
        let print = |method, path, input: &serde_json::Value| {
            Claim::new(1, key(), method, path, input).fingerprint
        };
        let input = serde_json::json!({"first_name": "A"});
        assert_eq!(
            print("POST", "/students", &input),
            print("POST", "/students", &input)
        );
        assert_ne!(
            print("POST", "/students", &input),
            print("PUT", "/students", &input)
        );
        assert_ne!(
            print("POST", "/students", &input),
            print("POST", "/students", &serde_json::json!({"first_name": "B"}))
        );
    }
}
