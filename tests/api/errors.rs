//! Every error leaves as JSON `{"detail": ...}`, never as Rocket's HTML page, and never with
//! the server-side cause in it.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use rocket::http::{ContentType, Status};
use serde_json::{Value, json};

use crate::helpers::{POOL_TIMEOUT_SECS, TestDb, bearer, client};

#[test]
fn an_unknown_route_answers_json_404() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = client.get("/no/such/route").dispatch();

    assert_eq!(response.status(), Status::NotFound);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(
        response.into_json::<Value>().unwrap(),
        json!({"detail": "Not Found"})
    );
}

#[test]
fn an_unreachable_database_answers_503_json_within_the_pool_timeout() {
    let db = TestDb::migrated();
    let client = client(&db);
    db.refuse_connections();

    let started = Instant::now();
    let response = client.get("/students").dispatch();
    let elapsed = started.elapsed();

    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(response.headers().get_one("Retry-After"), Some("1"));
    let body: Value = response.into_json().unwrap();
    assert!(body["detail"].as_str().unwrap().contains("retry"), "{body}");
    // The pool timeout plus slack for a loaded machine: the point is a bound, not a hang.
    assert!(
        elapsed < Duration::from_secs(POOL_TIMEOUT_SECS + 3),
        "took {elapsed:?}"
    );
}

#[test]
fn an_unexpected_database_error_answers_an_opaque_json_500() {
    let db = TestDb::migrated();
    let client = client(&db);
    diesel::sql_query("DROP TABLE student")
        .execute(&mut db.connect())
        .unwrap();

    let response = client.get("/students").dispatch();

    assert_eq!(response.status(), Status::InternalServerError);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(
        response.into_json::<Value>().unwrap(),
        json!({"detail": "Internal Server Error"}),
        "the cause stays in the log"
    );
}

#[test]
fn a_database_that_stops_taking_writes_answers_503_then_writes_again_on_new_connections() {
    let db = TestDb::migrated();
    let client = client(&db);
    // Made while the database takes writes, and used once, so the lookups below write nothing.
    let auth = bearer(&client);
    let post = || {
        client
            .post("/students")
            .header(ContentType::JSON)
            .header(auth.clone())
            .body(r#"{"first_name": "Ada", "last_name": "Lovelace", "major": "Mathematics"}"#)
            .dispatch()
    };
    assert_eq!(post().status(), Status::Created);

    // A failover: the server the pool reaches now refuses writes, as a demoted primary does.
    db.read_only(true);
    let refused = diesel::sql_query(
        "INSERT INTO student (first_name, last_name, major) VALUES ('a', 'b', 'c')",
    )
    .execute(&mut db.connect())
    .unwrap_err();
    assert!(
        refused.to_string().contains("read-only"),
        "the fault is real: {refused}"
    );
    for _ in 0..3 {
        let response = post();
        assert_eq!(response.status(), Status::ServiceUnavailable, "never a 500");
        assert_eq!(response.headers().get_one("Retry-After"), Some("1"));
        let body: Value = response.into_json().unwrap();
        assert!(body["detail"].as_str().unwrap().contains("retry"), "{body}");
    }
    assert_eq!(
        client.get("/students").dispatch().status(),
        Status::Ok,
        "reads go on"
    );

    // Back to a server that takes writes: each read-only connection is dropped at its first
    // refused write, so writes are served again within one try per pooled connection.
    db.read_only(false);
    let statuses: Vec<Status> = (0..4).map(|_| post().status()).collect();
    assert!(
        !statuses.contains(&Status::InternalServerError),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&Status::Created), "{statuses:?}");
}
