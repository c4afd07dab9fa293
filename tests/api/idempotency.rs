//! `Idempotency-Key` on `POST /students`: a retry gets the first answer and writes nothing; the
//! same key with another request, a twin in flight, and a malformed key are refused; keys belong
//! to their token and expire after 24 hours.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::{Value, json};
use students_api::auth::tokens::{self, Scope};
use students_api::idempotency;

use crate::helpers::{TestDb, bearer, client, connect};

fn post<'c>(
    client: &'c Client,
    token: Header<'static>,
    key: Option<&str>,
    body: &str,
) -> LocalResponse<'c> {
    let mut request = client
        .post("/students")
        .header(ContentType::JSON)
        .header(token)
        .body(body);
    if let Some(key) = key {
        request = request.header(Header::new("Idempotency-Key", key.to_owned()));
    }
    request.dispatch()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Students named `first_name`.
fn named(db: &TestDb, first_name: &str) -> i64 {
    diesel::sql_query("SELECT count(*) AS count FROM student WHERE first_name = $1")
        .bind::<Text, _>(first_name)
        .get_result::<Count>(&mut db.connect())
        .unwrap()
        .count
}

fn stored_keys(db: &TestDb) -> i64 {
    diesel::sql_query("SELECT count(*) AS count FROM idempotency_key")
        .get_result::<Count>(&mut db.connect())
        .unwrap()
        .count
}

const ADA: &str = r#"{"first_name": "Ada", "last_name": "Lovelace", "major": "Mathematics"}"#;
/// ADA with its fields in another order and other whitespace: the same request.
const ADA_REORDERED: &str = r#"{"major":"Mathematics","first_name":"Ada","last_name":"Lovelace"}"#;

#[test]
fn a_retry_with_the_same_key_gets_the_first_answer_and_writes_nothing() {
    let db = TestDb::migrated();
    let client = client(&db);

    let first = post(&client, bearer(&client), Some("retry-1"), ADA);
    assert_eq!(first.status(), Status::Created);
    assert_eq!(first.headers().get_one("Idempotent-Replayed"), None);
    let location = first.headers().get_one("Location").unwrap().to_owned();
    let body: Value = first.into_json().unwrap();

    // The answer was lost; the client sends the request again, serialized differently, or with
    // the draft's quoted form of the same key.
    for (key, sent) in [
        ("retry-1", ADA),
        ("retry-1", ADA_REORDERED),
        ("\"retry-1\"", ADA),
    ] {
        let retry = post(&client, bearer(&client), Some(key), sent);
        assert_eq!(retry.status(), Status::Created);
        assert_eq!(retry.content_type(), Some(ContentType::JSON));
        assert_eq!(retry.headers().get_one("Idempotent-Replayed"), Some("true"));
        assert_eq!(retry.headers().get_one("Location"), Some(location.as_str()));
        assert_eq!(retry.into_json::<Value>().unwrap(), body);
    }
    assert_eq!(named(&db, "Ada"), 1, "one student, however many retries");
    assert_eq!(location, format!("/students/{}", body["id"]));

    // The control: the same retries without a key each create a student.
    for _ in 0..2 {
        let keyless = post(&client, bearer(&client), None, ADA);
        assert_eq!(keyless.status(), Status::Created);
        assert_eq!(keyless.headers().get_one("Idempotent-Replayed"), None);
    }
    assert_eq!(named(&db, "Ada"), 3);
    assert_eq!(stored_keys(&db), 1, "keyless writes store nothing");
}

#[test]
fn a_replay_is_the_first_answer_even_after_the_student_changed_or_went() {
    let db = TestDb::migrated();
    let client = client(&db);
    let first = post(&client, bearer(&client), Some("then"), ADA);
    let location = first.headers().get_one("Location").unwrap().to_owned();
    let body: Value = first.into_json().unwrap();

    let patched = client
        .patch(location.clone())
        .header(ContentType::JSON)
        .header(bearer(&client))
        .body(r#"{"major": "Computing"}"#)
        .dispatch();
    assert_eq!(patched.status(), Status::Ok);
    let replay = post(&client, bearer(&client), Some("then"), ADA);
    assert_eq!(
        replay.into_json::<Value>().unwrap(),
        body,
        "what the first answer said"
    );

    let deleted = client.delete(location).header(bearer(&client)).dispatch();
    assert_eq!(deleted.status(), Status::NoContent);
    let replay = post(&client, bearer(&client), Some("then"), ADA);
    assert_eq!(replay.status(), Status::Created);
    assert_eq!(replay.into_json::<Value>().unwrap(), body);
    assert_eq!(named(&db, "Ada"), 0, "and no student written again");
}

#[test]
fn the_same_key_with_another_request_is_refused_and_writes_nothing() {
    let db = TestDb::migrated();
    let client = client(&db);
    assert_eq!(
        post(&client, bearer(&client), Some("k-1"), ADA).status(),
        Status::Created
    );

    let other = r#"{"first_name": "Grace", "last_name": "Hopper", "major": "Physics"}"#;
    let reused = post(&client, bearer(&client), Some("k-1"), other);
    assert_eq!(reused.status(), Status::UnprocessableEntity);
    let body: Value = reused.into_json().unwrap();
    assert_eq!(
        body["detail"][0]["type"], "idempotency_key_reused",
        "{body}"
    );
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["header", "Idempotency-Key"])
    );
    assert_eq!(named(&db, "Grace"), 0, "its insert was rolled back");

    // A new key for the new write.
    assert_eq!(
        post(&client, bearer(&client), Some("k-2"), other).status(),
        Status::Created
    );
    assert_eq!(named(&db, "Grace"), 1);
}

#[test]
fn keys_belong_to_the_token_that_sent_them() {
    let db = TestDb::migrated();
    let client = client(&db);
    let other = tokens::create(&mut db.connect(), "other", Scope::Students).unwrap();
    let other = Header::new("Authorization", format!("Bearer {other}"));

    let mine = post(&client, bearer(&client), Some("shared"), ADA);
    let theirs = post(&client, other, Some("shared"), ADA);

    assert_eq!(mine.status(), Status::Created);
    assert_eq!(theirs.status(), Status::Created);
    assert_eq!(theirs.headers().get_one("Idempotent-Replayed"), None);
    assert_ne!(
        mine.headers().get_one("Location"),
        theirs.headers().get_one("Location")
    );
    assert_eq!(named(&db, "Ada"), 2);
}

#[test]
fn a_malformed_key_is_a_422_together_with_the_bodys_problems() {
    let db = TestDb::migrated();
    let client = client(&db);
    let long = "k".repeat(256);

    for key in ["", long.as_str(), "\"\""] {
        let response = post(
            &client,
            bearer(&client),
            Some(key),
            r#"{"first_name": "Ada"}"#,
        );
        assert_eq!(response.status(), Status::UnprocessableEntity, "{key:?}");
        let body: Value = response.into_json().unwrap();
        let problems: Vec<(&Value, &Value)> = (body["detail"].as_array().unwrap().iter())
            .map(|problem| (&problem["loc"], &problem["type"]))
            .collect();
        assert!(
            problems.contains(&(
                &json!(["header", "Idempotency-Key"]),
                &json!("idempotency_key_format")
            )),
            "{body}"
        );
        assert!(
            problems.contains(&(&json!(["body", "last_name"]), &json!("missing"))),
            "{body}"
        );
    }

    let twice = client
        .post("/students")
        .header(ContentType::JSON)
        .header(bearer(&client))
        .header(Header::new("Idempotency-Key", "a"))
        .header(Header::new("Idempotency-Key", "b"))
        .body(ADA)
        .dispatch();
    assert_eq!(twice.status(), Status::UnprocessableEntity);
    assert_eq!(named(&db, "Ada"), 0);
    assert_eq!(stored_keys(&db), 0);
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    id: i32,
}

fn token_id(db: &TestDb, name: &str) -> i32 {
    diesel::sql_query("SELECT id FROM api_token WHERE name = $1")
        .bind::<Text, _>(name)
        .get_result::<Id>(&mut db.connect())
        .unwrap()
        .id
}

#[test]
fn a_twin_in_flight_is_answered_409_and_the_key_stays_free() {
    let db = TestDb::migrated();
    let client = client(&db);
    let token = bearer(&client);
    let id = token_id(&db, "tests");

    // The twin: the same key claimed by a transaction that has not committed.
    let mut twin = db.connect();
    diesel::sql_query("BEGIN").execute(&mut twin).unwrap();
    diesel::sql_query(
        "INSERT INTO idempotency_key (token_id, key, fingerprint, resource) \
         VALUES ($1, 'twin', sha256('x'), '{}')",
    )
    .bind::<diesel::sql_types::Integer, _>(id)
    .execute(&mut twin)
    .unwrap();

    let started = std::time::Instant::now();
    let response = post(&client, token.clone(), Some("twin"), ADA);
    assert_eq!(response.status(), Status::Conflict);
    assert_eq!(response.headers().get_one("Retry-After"), Some("1"));
    let body: Value = response.into_json().unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("in progress"),
        "{body}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "it waited only briefly"
    );
    assert_eq!(named(&db, "Ada"), 0, "its insert was rolled back");

    // The control: once the twin gives up, the same retry is written.
    diesel::sql_query("ROLLBACK").execute(&mut twin).unwrap();
    let retry = post(&client, token, Some("twin"), ADA);
    assert_eq!(retry.status(), Status::Created);
    assert_eq!(retry.headers().get_one("Idempotent-Replayed"), None);
    assert_eq!(named(&db, "Ada"), 1);
}

#[test]
fn a_write_that_failed_stores_nothing_so_its_retry_writes() {
    let db = TestDb::migrated();
    let client = client(&db);
    let token = bearer(&client);

    db.read_only(true);
    for _ in 0..2 {
        let refused = post(&client, token.clone(), Some("failover-1"), ADA);
        assert_eq!(refused.status(), Status::ServiceUnavailable);
        assert_eq!(refused.headers().get_one("Retry-After"), Some("1"));
    }
    db.read_only(false);

    let statuses: Vec<Status> = (0..3)
        .map(|_| post(&client, token.clone(), Some("failover-1"), ADA).status())
        .collect();
    assert_eq!(statuses.last(), Some(&Status::Created), "{statuses:?}");
    assert!(
        !statuses.contains(&Status::InternalServerError),
        "{statuses:?}"
    );
    assert_eq!(named(&db, "Ada"), 1);
}

#[test]
fn a_key_older_than_24_hours_is_free_again_and_swept() {
    let db = TestDb::migrated();
    let client = client(&db);
    let token = bearer(&client);
    assert_eq!(
        post(&client, token.clone(), Some("old"), ADA).status(),
        Status::Created
    );
    assert_eq!(
        post(&client, token.clone(), Some("young"), ADA).status(),
        Status::Created
    );
    diesel::sql_query(
        "UPDATE idempotency_key SET created_at = now() - interval '25 hours' WHERE key = 'old'",
    )
    .execute(&mut db.connect())
    .unwrap();

    // Reused after expiry, even for another request: a new write.
    let other = r#"{"first_name": "Grace", "last_name": "Hopper", "major": "Physics"}"#;
    let taken_over = post(&client, token.clone(), Some("old"), other);
    assert_eq!(taken_over.status(), Status::Created);
    assert_eq!(taken_over.headers().get_one("Idempotent-Replayed"), None);
    // And its new answer is the one kept.
    let replay = post(&client, token, Some("old"), other);
    assert_eq!(
        replay.headers().get_one("Idempotent-Replayed"),
        Some("true")
    );

    // The sweep removes the expired keys, and only those, in batches.
    diesel::sql_query(
        "INSERT INTO idempotency_key (token_id, key, fingerprint, resource, created_at) \
         SELECT 1, 'expired-' || n, sha256('x'), '{}', now() - interval '25 hours' \
         FROM generate_series(1, 2500) n",
    )
    .execute(&mut db.connect())
    .unwrap();
    assert_eq!(stored_keys(&db), 2502);
    assert_eq!(idempotency::sweep(&mut connect(db.url())).unwrap(), 2500);
    assert_eq!(stored_keys(&db), 2, "the young keys stay");
}
