//! The shipped binary as a process: what `scripts/serve.sh` and the Docker image run.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::TestDb;
use crate::process::{Ran, Service, binary, free_port, request};

#[test]
fn the_binary_migrates_a_fresh_database_and_serves_the_five_students_over_http() {
    let db = TestDb::empty();
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
fn started_without_a_database_it_retries_for_database_wait_then_exits_non_zero_saying_why() {
    // Nothing listens on a port we just released.
    let url = format!("postgres://nobody:nothing@127.0.0.1:{}/none", free_port());
    let started = Instant::now();
    let ran = Ran::of(
        binary(&url)
            .env("ROCKET_PORT", free_port().to_string())
            .env("ROCKET_DATABASE_WAIT", "2"),
    );

    assert!(!ran.status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited"
    );
    let log = ran.text();
    let attempts = log.matches("database not reachable (attempt").count();
    assert!(
        attempts >= 3,
        "each attempt is logged, with backoff:\n{log}"
    );
    assert!(log.contains("gave up on the database after"), "{log}");
    assert!(
        log.contains("cannot connect to the database: connection to server"),
        "{log}"
    );
}

#[test]
fn started_before_its_database_it_starts_normally_once_the_database_appears() {
    let db = TestDb::migrated();
    db.refuse_connections();

    let mut service = Service::start(db.url());
    std::thread::sleep(Duration::from_millis(1500));
    db.allow_connections();

    let (status, body) = service.wait_until_serving("/students").unwrap();
    assert_eq!(status, 200, "{body}");
    let log = service.stop();
    assert!(log.contains("database not reachable (attempt 1"), "{log}");
    assert!(
        log.contains("connected to the database on attempt"),
        "{log}"
    );
}

#[test]
fn a_port_already_in_use_stops_the_start_before_migrating_and_names_the_setting() {
    let db = TestDb::empty();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();

    let ran = Ran::of(binary(db.url()).env("ROCKET_PORT", port.to_string()));

    assert!(!ran.status.success());
    let log = ran.text();
    assert!(
        log.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{log}"
    );
    assert!(log.contains("ROCKET_PORT"), "{log}");
    assert!(
        crate::helpers::applied_versions(&mut db.connect()).is_empty(),
        "nothing was migrated"
    );
    drop(taken);
}

#[test]
fn healthcheck_exits_zero_while_the_service_is_ready_and_one_when_nothing_answers() {
    let db = TestDb::migrated();
    let mut service = Service::start(db.url());
    service.wait_until_serving("/ready").unwrap();

    let check = |port: u16| {
        Ran::of(
            binary(db.url())
                .arg("healthcheck")
                .env("ROCKET_PORT", port.to_string()),
        )
    };
    let ready = check(service.port);
    assert!(ready.status.success(), "{}", ready.text());
    assert_eq!(ready.stdout.trim(), r#"{"status":"ready"}"#);

    service.stop();
    let down = check(free_port());
    assert_eq!(down.status.code(), Some(1));
    assert!(
        down.stderr
            .starts_with("not ready: no answer from 127.0.0.1:"),
        "{}",
        down.text()
    );
}

#[test]
fn on_sigterm_ready_turns_503_at_once_while_new_requests_are_served_until_the_drain_ends() {
    let db = TestDb::migrated();
    let mut service = Service::start_with(db.url(), &[("ROCKET_SHUTDOWN_DRAIN", "2")]);
    service.wait_until_serving("/ready").unwrap();

    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let deadline = Instant::now() + Duration::from_secs(1);
    let ready = loop {
        let (status, _, body) = request(service.port, "GET", "/ready").unwrap();
        if status == 503 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains("Shutting down"), "{}", ready.1);
    let (status, _, _) = request(service.port, "GET", "/students").unwrap();
    assert_eq!(
        status, 200,
        "a request after SIGTERM, within the drain, is served"
    );
    assert!(service.child.try_wait().unwrap().is_none(), "still serving");

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = service.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not exit after its drain");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "it drained first"
    );
    assert!(
        request(service.port, "GET", "/health").is_err(),
        "the listener is closed"
    );
    let log = service.stop();
    assert!(log.contains("SIGTERM: draining"), "{log}");
}

/// What the service answers on a new connection that opens with `preface`, within 5 s.
fn first_bytes_after(port: u16, preface: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(preface).unwrap();
    let mut answer = vec![0; 64];
    let read = stream.read(&mut answer).unwrap_or(0);
    answer.truncate(read);
    answer
}

#[test]
fn cleartext_http2_is_not_spoken_only_http1() {
    let db = TestDb::migrated();
    let mut service = Service::start_with(db.url(), &[("ROCKET_LOG_LEVEL", "critical")]);
    service.wait_until_serving("/health").unwrap();

    // HTTP/2 with prior knowledge: a server that speaks it answers with a SETTINGS frame
    // (a 9-byte header whose fourth byte, the frame type, is 4).
    let answer = first_bytes_after(service.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(
        !(answer.len() >= 9 && answer[3] == 4),
        "the service answered HTTP/2: {answer:?}"
    );
    // The control: the same connection opened with HTTP/1.1 is answered in HTTP/1.1.
    let answer = first_bytes_after(service.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}
