//! Access control: writes need a live token of scope `students`, checked before the body is read;
//! reads are public unless `public_reads` is off; `/metrics` needs a token of either scope; a
//! revoked token stops working within 2 s; and `students-api token` creates, lists and revokes
//! tokens, with a one-line error and exit status 1 for each mistake.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use students_api::auth::tokens::{self, Scope};

use crate::helpers::{
    TestDb, bearer, client, client_with, figment, get_json, send_json, students_fingerprint, token,
};
use crate::process::{Ran, binary};

const VALID: &str = r#"{"first_name": "Ada", "last_name": "Lovelace", "major": "Mathematics"}"#;

/// Every write the API has, each with a body a valid token would get past validation with.
fn writes() -> [(Method, &'static str, &'static str); 4] {
    [
        (Method::Post, "/students", VALID),
        (Method::Put, "/students/1", VALID),
        (Method::Patch, "/students/2", r#"{"major": "Art"}"#),
        (Method::Delete, "/students/3", ""),
    ]
}

fn write<'c>(
    client: &'c Client,
    (method, uri, body): (Method, &str, &str),
    authorization: Option<&str>,
) -> LocalResponse<'c> {
    let mut request = (client.req(method, uri.to_owned()))
        .header(ContentType::JSON)
        .body(body);
    if let Some(value) = authorization {
        request.add_header(Header::new("Authorization", value.to_owned()));
    }
    request.dispatch()
}

/// The status, `WWW-Authenticate` and JSON `detail` of a response.
fn refusal(response: LocalResponse<'_>) -> (Status, Option<String>, String) {
    let status = response.status();
    let challenge = (response.headers().get_one("WWW-Authenticate")).map(str::to_owned);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    let body: Value = response.into_json().unwrap();
    (
        status,
        challenge,
        body["detail"].as_str().unwrap().to_owned(),
    )
}

fn create_token(db: &TestDb, name: &str, scope: Scope) -> String {
    tokens::create(&mut db.connect(), name, scope).unwrap()
}

#[test]
fn every_write_without_a_usable_token_is_refused_401_with_a_bearer_challenge_and_writes_nothing() {
    let db = TestDb::migrated();
    let client = client(&db);
    let before = students_fingerprint(&mut db.connect());
    let unknown = format!("Bearer {}{}", tokens::PREFIX, "ab".repeat(32));
    let cases: [(Option<&str>, &str, &str); 6] = [
        (None, "Bearer", "Not authenticated"),
        (
            Some("Basic dXNlcjpwYXNz"),
            "Bearer error=\"invalid_request\"",
            "`Bearer <token>`",
        ),
        (
            Some("Bearer"),
            "Bearer error=\"invalid_request\"",
            "`Bearer <token>`",
        ),
        (
            Some("Bearer not-a-token"),
            "Bearer error=\"invalid_token\"",
            "invalid or revoked",
        ),
        (
            Some("Bearer sapi_short"),
            "Bearer error=\"invalid_token\"",
            "invalid or revoked",
        ),
        (
            Some(&unknown),
            "Bearer error=\"invalid_token\"",
            "invalid or revoked",
        ),
    ];

    for request in writes() {
        for (authorization, challenge, detail) in cases {
            let (status, got, message) = refusal(write(&client, request, authorization));
            let case = format!("{} {} with {authorization:?}", request.0, request.1);
            assert_eq!(status, Status::Unauthorized, "{case}");
            assert_eq!(got.as_deref(), Some(challenge), "{case}");
            assert!(message.contains(detail), "{case}: {message}");
        }
    }
    assert_eq!(students_fingerprint(&mut db.connect()), before);

    // The negative control: the same requests with a live token are served.
    let live = format!("Bearer {}", token(&client));
    for request in writes() {
        let status = write(&client, request, Some(&live)).status();
        assert!(
            status.class().is_success(),
            "{} {}: {status}",
            request.0,
            request.1
        );
    }
    assert_ne!(students_fingerprint(&mut db.connect()), before);
}

#[test]
fn the_token_is_checked_before_the_body_so_an_anonymous_client_learns_nothing_about_validation() {
    let db = TestDb::migrated();
    let client = client(&db);
    let bad_bodies = [
        (Method::Post, "/students", r#"{"first_name": 1}"#),
        (Method::Post, "/students", "not json"),
        (Method::Put, "/students/1", "{}"),
        (Method::Patch, "/students/x", r#"{"major": ""}"#),
    ];

    for request in bad_bodies {
        let anonymous = write(&client, request, None).status();
        assert_eq!(
            anonymous,
            Status::Unauthorized,
            "{} {}",
            request.0,
            request.1
        );
        // With a token, the same request reaches validation.
        let authorised = write(
            &client,
            request,
            Some(&format!("Bearer {}", token(&client))),
        );
        assert!(
            [Status::BadRequest, Status::UnprocessableEntity].contains(&authorised.status()),
            "{} {}: {}",
            request.0,
            request.1,
            authorised.status()
        );
    }
    // Nor is a body too large read before the token is checked.
    let huge = "x".repeat(100_000);
    let (status, ..) = refusal(write(&client, (Method::Post, "/students", &huge), None));
    assert_eq!(status, Status::Unauthorized);
}

#[test]
fn a_revoked_token_is_refused_within_two_seconds() {
    let db = TestDb::migrated();
    let client = client(&db);
    let token = create_token(&db, "leaked", Scope::Students);
    let authorization = format!("Bearer {token}");
    let patch = (Method::Patch, "/students/1", r#"{"major": "Before"}"#);
    assert_eq!(
        write(&client, patch, Some(&authorization)).status(),
        Status::Ok
    );

    let revoked = Ran::of(binary(db.url()).args(["token", "revoke", "leaked"]));
    let at = Instant::now();
    assert!(revoked.status.success(), "{}", revoked.text());

    let refused_after = loop {
        let status = write(&client, patch, Some(&authorization)).status();
        if status == Status::Unauthorized {
            break at.elapsed();
        }
        assert_eq!(status, Status::Ok);
        assert!(
            at.elapsed() < Duration::from_secs(3),
            "still served after 3 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(refused_after <= Duration::from_secs(2), "{refused_after:?}");
}

#[test]
fn a_metrics_token_may_scrape_but_not_write_or_read_when_reads_need_a_token() {
    let db = TestDb::migrated();
    let client = client_with(figment(&db).merge(("public_reads", false)));
    let metrics = format!("Bearer {}", create_token(&db, "prometheus", Scope::Metrics));

    let (status, challenge, detail) = refusal(write(
        &client,
        (Method::Delete, "/students/1", ""),
        Some(&metrics),
    ));
    assert_eq!(status, Status::Forbidden);
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"insufficient_scope\"")
    );
    assert!(detail.contains("/metrics"), "{detail}");
    let read = client
        .get("/students")
        .header(Header::new("Authorization", metrics.clone()));
    assert_eq!(read.dispatch().status(), Status::Forbidden);

    let scrape = client
        .get("/metrics")
        .header(Header::new("Authorization", metrics));
    assert_eq!(scrape.dispatch().status(), Status::Ok);
    let scrape = client.get("/metrics").header(bearer(&client));
    assert_eq!(
        scrape.dispatch().status(),
        Status::Ok,
        "a students token may scrape too"
    );
}

#[test]
fn reads_are_public_by_default_and_need_a_token_when_public_reads_is_off() {
    let db = TestDb::migrated();
    let public = client(&db);
    assert_eq!(get_json(&public, "/students").0, Status::Ok);
    assert_eq!(get_json(&public, "/students/1").0, Status::Ok);

    let private = client_with(figment(&db).merge(("public_reads", false)));
    for uri in ["/students", "/students/1", "/students?limit=2"] {
        let (status, challenge, _) = refusal(private.get(uri).dispatch());
        assert_eq!(status, Status::Unauthorized, "{uri}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{uri}");
        let with_token = private.get(uri).header(bearer(&private)).dispatch();
        assert_eq!(with_token.status(), Status::Ok, "{uri}");
    }
    // The probes and the documentation stay public.
    for uri in ["/health", "/ready", "/openapi.json", "/docs/"] {
        assert_eq!(private.get(uri).dispatch().status(), Status::Ok, "{uri}");
    }
}

#[test]
fn metrics_without_credentials_are_refused() {
    let db = TestDb::migrated();
    let client = client(&db);

    let (status, challenge, detail) = refusal(client.get("/metrics").dispatch());

    assert_eq!(status, Status::Unauthorized);
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert_eq!(detail, "Not authenticated");
    let with = client.get("/metrics").header(bearer(&client)).dispatch();
    assert_eq!(with.status(), Status::Ok);
}

#[test]
fn without_a_database_a_write_is_answered_503_not_401() {
    let db = TestDb::migrated();
    let client = client(&db);
    let authorization = format!("Bearer {}", token(&client));
    db.refuse_connections();

    let (status, ..) = refusal(write(&client, writes()[0], Some(&authorization)));
    db.allow_connections();

    assert_eq!(status, Status::ServiceUnavailable);
}

/// `students-api token <args>` against `database_url`.
fn token_command(database_url: &str, args: &[&str]) -> Ran {
    Ran::of(binary(database_url).arg("token").args(args))
}

fn assert_one_line_error(ran: &Ran, needle: &str) {
    assert_eq!(ran.status.code(), Some(1), "{}", ran.text());
    let line = ran.stderr.trim_end();
    assert!(
        line.starts_with("error: ") && !line.contains('\n'),
        "{line:?}"
    );
    assert!(line.contains(needle), "{needle:?} missing from {line:?}");
}

#[test]
fn token_create_prints_the_token_last_and_stores_only_its_sha256() {
    let db = TestDb::migrated();

    let created = token_command(db.url(), &["create", "ci"]);

    assert!(created.status.success(), "{}", created.text());
    let token = created.stdout.lines().last().unwrap().to_owned();
    assert!(tokens::well_formed(&token), "{token}");
    let other = token_command(db.url(), &["create", "deploy"]).stdout;
    assert_ne!(other.trim(), token);
    use students_api::schema::api_token::dsl::*;
    let stored: Vec<(String, Vec<u8>)> = (api_token.select((name, sha256)))
        .order(id)
        .load(&mut db.connect())
        .unwrap();
    assert_eq!(
        stored[0],
        ("ci".to_owned(), Sha256::digest(&token).to_vec())
    );
    let row: String = diesel::sql_query("SELECT row_to_json(t)::text AS json FROM api_token t")
        .load::<Json>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|row| row.json)
        .collect();
    let secret = token.strip_prefix(tokens::PREFIX).unwrap();
    assert!(!row.contains(secret), "the token itself is stored: {row}");

    let list = token_command(db.url(), &["list"]);
    assert!(list.status.success(), "{}", list.text());
    let line = list
        .stdout
        .lines()
        .find(|line| line.starts_with("ci "))
        .unwrap();
    assert!(line.contains("students"), "{line}");
    assert!(line.trim_end().ends_with('-'), "not revoked: {line}");
}

#[derive(QueryableByName)]
struct Json {
    #[diesel(sql_type = diesel::sql_types::Text)]
    json: String,
}

#[test]
fn token_list_shows_when_a_token_was_last_used_and_revoked() {
    let db = TestDb::migrated();
    let client = client(&db);
    let authorization = format!("Bearer {}", create_token(&db, "used", Scope::Students));
    create_token(&db, "unused", Scope::Metrics);
    write(
        &client,
        (Method::Delete, "/students/5", ""),
        Some(&authorization),
    );
    assert!(
        token_command(db.url(), &["revoke", "used"])
            .status
            .success()
    );

    let list = token_command(db.url(), &["list"]).stdout;

    let columns = |who: &str| -> Vec<String> {
        let line = list.lines().find(|line| line.starts_with(who)).unwrap();
        line.split("  ")
            .filter(|part| !part.is_empty())
            .map(|part| part.trim().to_owned())
            .collect()
    };
    let used = columns("used ");
    assert_eq!(used.len(), 5, "{list}");
    assert_ne!(used[3], "-", "last used: {list}");
    assert_ne!(used[4], "-", "revoked: {list}");
    let unused = columns("unused");
    assert_eq!(
        (unused[1].as_str(), unused[3].as_str(), unused[4].as_str()),
        ("metrics", "-", "-")
    );
}

#[test]
fn each_token_mistake_is_one_line_and_exit_status_1() {
    let db = TestDb::migrated();
    assert!(token_command(db.url(), &["create", "me"]).status.success());

    assert_one_line_error(
        &token_command(db.url(), &["create", "me"]),
        "already exists",
    );
    assert_one_line_error(
        &token_command(db.url(), &["create", "has space"]),
        "invalid token name",
    );
    assert_one_line_error(
        &token_command(db.url(), &["revoke", "nobody"]),
        "no token is named \"nobody\"",
    );
    assert!(token_command(db.url(), &["revoke", "me"]).status.success());
    assert_one_line_error(
        &token_command(db.url(), &["revoke", "me"]),
        "already revoked",
    );
    // A revoked token's name can be given to a new one.
    assert!(token_command(db.url(), &["create", "me"]).status.success());

    let no_server = "postgres://nobody@127.0.0.1:1/nowhere";
    for args in [&["create", "x"][..], &["list"], &["revoke", "x"]] {
        assert_one_line_error(
            &token_command(no_server, args),
            "cannot connect to the database",
        );
    }
    let unmigrated = TestDb::empty();
    assert_one_line_error(
        &token_command(unmigrated.url(), &["list"]),
        "apply the migrations first",
    );
}

#[test]
fn the_crud_suite_sends_tokens_and_a_token_is_what_gets_it_through() {
    // `send_json` carries the database's token; without it the same request is refused.
    let db = TestDb::migrated();
    let client = client(&db);
    let body = json!({"first_name": "Grace", "last_name": "Hopper", "major": "Navy"});

    assert_eq!(
        send_json(&client, Method::Post, "/students", body.clone()).status(),
        Status::Created
    );
    let anonymous = client
        .post("/students")
        .header(ContentType::JSON)
        .body(body.to_string());
    assert_eq!(anonymous.dispatch().status(), Status::Unauthorized);
}
