//! The shipped binary as a process: what `scripts/serve.sh` and the Docker image run.

mod common;

use common::TestDb;
use common::process::{Service, binary, free_port, request};
use serde_json::Value;

#[test]
fn the_binary_migrates_a_fresh_database_and_serves_the_five_students_over_http() {
    let db = TestDb::new();
    let mut service = Service::start(db.url());

    let (status, body) = service.wait_until_serving("/students").unwrap();

    assert_eq!(status, 200, "{body}");
    let students: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
    assert_eq!(students.len(), 5);
    assert_eq!(students[0]["first_name"], "Alice");

    // Rocket cannot parse a method it does not know; it still gets the JSON 405 of any other.
    let (status, head, body) = request(service.port, "QUERY", "/students").unwrap();
    assert_eq!(status, 405, "{head}\n{body}");
    assert!(
        head.to_lowercase().contains("allow: get, head, post"),
        "{head}"
    );
    assert_eq!(body, r#"{"detail":"Method Not Allowed"}"#);

    let log = service.stop();
    assert!(
        log.contains("applied migration 2026-11-27-163402-0000_create_student"),
        "the log names each migration it applied:\n{log}"
    );
}

#[test]
fn the_binary_exits_non_zero_with_a_clear_message_when_the_database_is_unreachable() {
    // Nothing listens on a port we just released.
    let url = format!("postgres://nobody:nothing@127.0.0.1:{}/none", free_port());
    let output = binary(&url)
        .env("ROCKET_PORT", free_port().to_string())
        .output()
        .expect("run the binary");

    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("cannot connect to the database to migrate it"),
        "{log}"
    );
}
