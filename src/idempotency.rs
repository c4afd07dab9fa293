//! `Idempotency-Key` on `POST /students`: a client that sent a write and lost the answer (a
//! timeout, a 503 in a failover, a dropped connection) retries it with the same key and gets the
//! first answer back instead of writing twice (docs/api.md, "Retrying a write").
//!
//! The header is the IETF httpapi draft's; its semantics are Stripe's. A key belongs to the token
//! that sent it. It is stored by the same statement as the write, with the row the answer showed
//! ([`crate::students::model::Student::insert_keyed`]): a committed write always has its key, and
//! a failed one never does. A key already taken fails that statement, and the stored answer is
//! read instead.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
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

    pub fn as_str(&self) -> &str {
        &self.0
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
    pub(crate) token_id: i32,
    pub(crate) key: Key,
    pub(crate) fingerprint: [u8; 32],
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

/// A `201 Created` answer, or its replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub location: String,
    /// JSON.
    pub body: String,
    /// Sent before, to the request that first used the key.
    pub replayed: bool,
}

impl Answer {
    /// `201 Created` at `location` with `body` as JSON.
    pub fn created(location: String, body: &impl Serialize, replayed: bool) -> QueryResult<Answer> {
        Ok(Answer {
            location,
            body: serde_json::to_string(body)
                .map_err(|err| DieselError::SerializationError(Box::new(err)))?,
            replayed,
        })
    }
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response
            .status(Status::Created)
            .header(rocket::http::ContentType::JSON)
            .header(Header::new("Location", self.location))
            .sized_body(self.body.len(), std::io::Cursor::new(self.body));
        if self.replayed {
            response.header(Header::new("Idempotent-Replayed", "true"));
        }
        response.ok()
    }
}

/// What became of a keyed write.
#[derive(Debug)]
pub enum Written<T> {
    /// Written now.
    Fresh(T),
    /// Written earlier under the same key, by the same request: the resource the first answer
    /// showed, as stored (JSON).
    Replayed(String),
    /// The key was used, within [`KEPT`], for another request.
    Reused,
    /// A request with the same key is in flight and did not commit within the wait.
    InFlight,
}

/// The 422 of a key used with another request.
pub fn reused() -> ApiError {
    header_error(Problem::new(
        "This Idempotency-Key was used with another request; use a new key for a new write",
        "idempotency_key_reused",
    ))
}

/// The 409 of a key whose first request is still being written.
pub fn in_flight() -> ApiError {
    ApiError::Conflict("A request with this Idempotency-Key is still in progress; retry it shortly")
}

/// Runs `write`, which stores `claim`'s key with the write ([`Student::insert_keyed`]), once for
/// the key: when the key holds an answer younger than [`KEPT`], the write is not made and that
/// answer is returned, if it was given to the same request.
///
/// [`Student::insert_keyed`]: crate::students::model::Student::insert_keyed
pub fn write_once<T>(
    conn: &mut PgConnection,
    claim: &Claim,
    write: impl Fn(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<Written<T>> {
    // A second and third try only after an expired key was deleted, or a key vanished (swept)
    // between the failed write and the read.
    for _ in 0..3 {
        match write(conn) {
            Ok(written) => return Ok(Written::Fresh(written)),
            Err(err) if is_lock_timeout(&err) => return Ok(Written::InFlight),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                if info.constraint_name() == Some("idempotency_key_pkey") => {}
            Err(err) => return Err(err),
        }
        let stored = idempotency_key::table
            .find((claim.token_id, claim.key.as_str()))
            .select((
                idempotency_key::fingerprint,
                idempotency_key::resource,
                idempotency_key::created_at,
            ))
            .first::<(Vec<u8>, String, DateTime<Utc>)>(conn)
            .optional()?;
        match stored {
            Some((.., created_at)) if created_at < Utc::now() - KEPT => {
                // Expired but not swept yet: free again.
                diesel::delete(idempotency_key::table.find((claim.token_id, claim.key.as_str())))
                    .filter(idempotency_key::created_at.eq(created_at))
                    .execute(conn)?;
            }
            Some((fingerprint, resource, _)) if fingerprint == claim.fingerprint => {
                return Ok(Written::Replayed(resource));
            }
            Some(_) => return Ok(Written::Reused),
            None => {}
        }
    }
    Ok(Written::InFlight)
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
