//! `/metrics` in Prometheus' text format, and the JSON access log with its request id.

use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use serde_json::Value;

use crate::helpers::{FILES, TestDb, bearer, client, client_with};
use crate::process::{Service, request_with};

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

fn scrape(client: &Client) -> String {
    let response = client.get("/metrics").header(bearer(client)).dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.content_type(),
        Some(
            ContentType::new("text", "plain")
                .with_params([("version", "0.0.4"), ("charset", "utf-8")])
        )
    );
    response.into_string().unwrap()
}

#[test]
fn requests_are_counted_and_timed_by_route_template_and_status() {
    let db = TestDb::migrated();
    let client = client(&db);
    for path in [
        "/students",
        "/students",
        "/students/1",
        "/students/2",
        "/students/999",
        "/nowhere",
    ] {
        client.get(path).dispatch();
    }

    let text = scrape(&client);
    let count = |labels: &str| {
        sample(
            &text,
            &format!("students_api_http_requests_total{{{labels}}}"),
        )
    };
    assert_eq!(
        count(r#"method="GET",route="/students",status="200""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="/students/<id>",status="200""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="/students/<id>",status="404""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="unmatched",status="404""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"students_api_http_request_duration_seconds_count{method="GET",route="/students/<id>"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        text.contains(r#"students_api_http_request_duration_seconds_bucket{method="GET",route="/students",le="0.001"}"#),
        "{text}"
    );
}

#[test]
fn the_pool_the_schema_version_and_the_build_are_reported() {
    let db = TestDb::migrated();
    let client = client(&db);
    client.get("/students").dispatch();

    let text = scrape(&client);
    let newest = FILES.last().unwrap();
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"students_api_schema_migration_info{{name="{}",version="{}"}}"#,
                newest.name,
                newest.version()
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"students_api_build_info{{newest_migration="{}",version="{}"}}"#,
                newest.name,
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{text}"
    );
    let open = sample(&text, "students_api_pool_connections_open").unwrap();
    let idle = sample(&text, "students_api_pool_connections_idle").unwrap();
    assert!(open >= 1.0 && idle <= open, "{text}");
    assert_eq!(
        sample(&text, "students_api_pool_requests_waiting"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "students_api_pool_timeouts_total"), Some(0.0));
}

/// A pool timeout long enough that a scrape waiting for it could not pass for one that did not.
const POOL_TIMEOUT: u64 = 5;

fn with_long_pool_timeout(db: &TestDb) -> Client {
    client_with(crate::helpers::figment(db).merge((
        format!("databases.{}.timeout", students_api::settings::DATABASE),
        POOL_TIMEOUT,
    )))
}

#[test]
fn without_a_database_a_scrape_answers_well_inside_the_pool_timeout() {
    let db = TestDb::migrated();
    let client = with_long_pool_timeout(&db);
    // Prometheus' token, looked up once while the database answered, then stale.
    scrape(&client);
    std::thread::sleep(students_api::auth::FRESH);
    db.refuse_connections();
    client.get("/students").dispatch(); // breaks the pooled connection

    let started = std::time::Instant::now();
    let text = scrape(&client);
    let took = started.elapsed();
    db.allow_connections();
    assert!(
        took < std::time::Duration::from_secs(POOL_TIMEOUT / 2),
        "the scrape took {took:?}, as if it waited the {POOL_TIMEOUT} s pool timeout"
    );
    assert!(
        text.contains("students_api_pool_connections_open"),
        "{text}"
    );
}

#[test]
fn without_a_database_a_token_never_looked_up_cannot_scrape() {
    let db = TestDb::migrated();
    let client = with_long_pool_timeout(&db);
    let token = crate::helpers::token(&client);
    db.refuse_connections();

    let started = std::time::Instant::now();
    let response = (client.get("/metrics"))
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .dispatch();
    let took = started.elapsed();
    db.allow_connections();

    // Answered within the scrape's bound on the lookup, not the pool's timeout.
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert!(
        took < std::time::Duration::from_secs(POOL_TIMEOUT / 2),
        "{took:?}"
    );
}

#[test]
fn pool_timeouts_are_counted_and_the_scrape_still_answers_without_a_database() {
    let db = TestDb::migrated();
    let client = client(&db);
    scrape(&client);
    db.refuse_connections();
    // The pool's connection breaks on its next use; then no new one can be opened.
    for _ in 0..3 {
        client.get("/students").dispatch();
    }

    let text = scrape(&client);
    db.allow_connections();
    assert!(
        sample(&text, "students_api_pool_timeouts_total").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        !text.contains("students_api_schema_migration_info{"),
        "{text}"
    );
}

#[test]
fn the_json_access_log_writes_one_object_per_request_with_the_request_id_it_echoes() {
    let db = TestDb::migrated();
    let mut service = Service::start_with(db.url(), &[("ROCKET_ACCESS_LOG", "json")]);
    service.wait_until_serving("/health").unwrap();

    let sent = request_with(
        service.port,
        "GET",
        "/students/1",
        &[("X-Request-Id", "trace-42")],
    )
    .unwrap();
    assert_eq!(sent.0, 200);
    assert!(
        sent.1.to_lowercase().contains("x-request-id: trace-42"),
        "{}",
        sent.1
    );
    let generated = request_with(
        service.port,
        "GET",
        "/students",
        &[("X-Request-Id", "has space")],
    )
    .unwrap();
    let id = generated
        .1
        .lines()
        .find_map(|line| {
            line.to_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_owned)
        })
        .expect("an id is generated when the one sent is unusable");
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let log = service.stop();
    let objects: Vec<Value> = log
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let traced = objects
        .iter()
        .find(|object| object["request_id"] == "trace-42")
        .expect(&log);
    assert_eq!(traced["method"], "GET");
    assert_eq!(traced["path"], "/students/1");
    assert_eq!(traced["route"], "/students/<id>");
    assert_eq!(traced["status"], 200);
    assert!(traced["duration_ms"].as_f64().is_some());
    assert!(
        objects
            .iter()
            .any(|object| object["request_id"] == id.as_str()),
        "{log}"
    );
}

#[test]
fn the_text_access_log_stays_the_default_and_echoes_no_request_id() {
    let db = TestDb::migrated();
    let client = client(&db);
    let response = client
        .get("/health")
        .header(Header::new("X-Request-Id", "trace-1"))
        .dispatch();
    assert_eq!(response.headers().get_one("X-Request-Id"), None);
}

/// The `client` of the JSON access log line of a request that claimed to come from elsewhere.
fn logged_client(env: &[(&str, &str)]) -> Value {
    let db = TestDb::migrated();
    let mut env = env.to_vec();
    env.push(("ROCKET_ACCESS_LOG", "json"));
    let mut service = Service::start_with(db.url(), &env);
    service.wait_until_serving("/health").unwrap();
    let claimed = [
        ("X-Real-IP", "203.0.113.9"),
        ("X-Request-Id", "claims-an-address"),
    ];
    assert_eq!(
        request_with(service.port, "GET", "/students", &claimed)
            .unwrap()
            .0,
        200
    );
    let log = service.stop();
    let line = (log.lines())
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|object| object["request_id"] == "claims-an-address")
        .expect(&log);
    line["client"].clone()
}

#[test]
fn the_access_log_records_the_peer_not_the_address_a_client_claims() {
    assert_eq!(logged_client(&[]), "127.0.0.1");
}

#[test]
fn negative_control_with_ip_header_set_the_claimed_address_is_trusted() {
    // What Rocket does by default, and what a proxy that sets the header needs.
    assert_eq!(
        logged_client(&[("ROCKET_IP_HEADER", "X-Real-IP")]),
        "203.0.113.9"
    );
}
