//! What a broken or hostile HTTP client sends, over a real socket to the real binary: framing
//! that `rocket::local` cannot produce (a body cut short, both Content-Length and
//! Transfer-Encoding, no Host), a form that asks for another method, a method Rocket does not
//! know. Each refused case sits beside its well-formed twin, which is served, so that every
//! check here is shown able to fail.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use students_api::auth::tokens::{self, Scope};

use crate::helpers::{TestDb, token_of};
use crate::process::{Service, request, send_json};

/// How long a read waits for more of an answer: an open connection that sends nothing more in
/// this time counts as kept open.
const QUIET: Duration = Duration::from_millis(1500);

/// What came back on one connection.
struct Raw {
    text: String,
    /// Whether the service closed the connection (rather than leaving it open and quiet).
    closed: bool,
}

impl Raw {
    /// The status of the first answer.
    fn status(&self) -> u16 {
        (self.text.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// How many answers came.
    fn answers(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count() + self.text.matches("HTTP/1.0 ").count()
    }

    /// A header of the first answer, by its lowercase name.
    fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The `type` of the first entry of a 400's `detail`.
    fn error_type(&self) -> String {
        let body = self.text.split("\r\n\r\n").nth(1).unwrap_or("");
        let body = body.split("HTTP/1.").next().unwrap_or("");
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        value["detail"][0]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends `bytes` on a new connection, closes the sending side if `half_close`, and reads until
/// the service closes or stays quiet for [`QUIET`].
fn send(port: u16, bytes: &[u8], half_close: bool) -> Raw {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the service");
    stream.set_read_timeout(Some(QUIET)).unwrap();
    stream.write_all(bytes).expect("send the request");
    if half_close {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut received = Vec::new();
    let mut buffer = [0; 65536];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    Raw {
        text: String::from_utf8_lossy(&received).into_owned(),
        closed,
    }
}

/// [`send`] of a whole request, asking the service to close after its answer (a client that
/// half-closes after a whole request may get no answer from hyper at all).
fn send_whole(port: u16, request: &str) -> Raw {
    send(
        port,
        request
            .replacen("\r\n", "\r\nConnection: close\r\n", 1)
            .as_bytes(),
        false,
    )
}

/// The binary on a database of its own, with a token that may write.
struct Fixture {
    service: Service,
    token: String,
    _db: TestDb,
}

impl Fixture {
    fn start() -> Fixture {
        let db = TestDb::migrated();
        let mut service = Service::start(db.url());
        service
            .wait_until_serving("/health")
            .expect("the service starts");
        let token = token_of(db.url());
        Fixture {
            service,
            token,
            _db: db,
        }
    }

    fn port(&self) -> u16 {
        self.service.port
    }

    fn auth(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.token)
    }

    fn new_student(&self) -> i64 {
        let body = json!({"first_name": "Framed", "last_name": "Student", "major": "Before"});
        let (status, _, body) = send_json(self.port(), &self.token, "POST", "/students", &body)
            .expect("create a student");
        assert_eq!(status, 201, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// The student's major, or `None` when it does not exist.
    fn major(&self, id: i64) -> Option<String> {
        let (status, _, body) = request(self.port(), "GET", &format!("/students/{id}")).unwrap();
        (status == 200).then(|| {
            let student: Value = serde_json::from_str(&body).unwrap();
            student["major"].as_str().unwrap().to_owned()
        })
    }

    fn patch(&self, id: i64, extra_headers: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = format!(
            "PATCH /students/{id} HTTP/1.1\r\nHost: localhost\r\n{}Content-Type: application/json\r\n{extra_headers}\r\n",
            self.auth()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn delete(&self, id: i64, extra_headers: &str) -> String {
        format!(
            "DELETE /students/{id} HTTP/1.1\r\nHost: localhost\r\n{}{extra_headers}\r\n",
            self.auth()
        )
    }
}

#[test]
fn a_body_cut_short_of_what_it_declared_is_refused_with_400_and_nothing_is_written() {
    let fixture = Fixture::start();
    let short = br#"{"major":"Z"}"#;
    // Longer than the 14 bytes Rocket reads ahead of every route.
    let long = br#"{"major":"Zulu, longer than the peek"}"#;
    let chunked = |body: &[u8], end: bool| {
        let mut bytes = format!("{:x}\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(if end { b"\r\n0\r\n\r\n" } else { b"\r\n" });
        bytes
    };
    type Case<'a> = (&'a str, String, Vec<u8>);
    let cases: [Case<'_>; 3] = [
        (
            "a short body with Content-Length: 200",
            "Content-Length: 200\r\n".into(),
            short.to_vec(),
        ),
        (
            "a body longer than Rocket's read-ahead, with Content-Length: 200",
            "Content-Length: 200\r\n".into(),
            long.to_vec(),
        ),
        (
            "a chunked body without its last chunk",
            "Transfer-Encoding: chunked\r\n".into(),
            chunked(short, false),
        ),
    ];
    for (what, framing, body) in cases {
        let id = fixture.new_student();
        let answer = send(fixture.port(), &fixture.patch(id, &framing, &body), true);
        assert_eq!(answer.status(), 400, "{what}: {}", answer.text);
        assert_eq!(answer.error_type(), "body_incomplete", "{what}");
        assert!(answer.closed, "{what}: the connection was left open");
        assert_eq!(
            fixture.major(id).as_deref(),
            Some("Before"),
            "{what}: written"
        );
    }

    // The twins: the same bodies, whole.
    let twins: [Case<'_>; 3] = [
        (
            "the short body, whole",
            format!("Content-Length: {}\r\n", short.len()),
            short.to_vec(),
        ),
        (
            "the longer body, whole",
            format!("Content-Length: {}\r\n", long.len()),
            long.to_vec(),
        ),
        (
            "the chunked body, whole",
            "Transfer-Encoding: chunked\r\n".into(),
            chunked(short, true),
        ),
    ];
    for (what, framing, body) in twins {
        let id = fixture.new_student();
        let body_text = String::from_utf8(body.clone()).unwrap();
        let request = String::from_utf8(fixture.patch(id, &framing, &body)).unwrap();
        let answer = send_whole(fixture.port(), &request);
        assert_eq!(answer.status(), 200, "{what}: {}", answer.text);
        let written: Value = serde_json::from_str(
            body_text
                .lines()
                .find(|line| line.starts_with('{'))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            fixture.major(id),
            written["major"].as_str().map(str::to_owned)
        );
    }

    // A DELETE reads no body, so only the screening before routing sees one cut short.
    let id = fixture.new_student();
    let mut cut = fixture.delete(id, "Content-Length: 100\r\n").into_bytes();
    cut.extend_from_slice(b"not all of it");
    let answer = send(fixture.port(), &cut, true);
    assert_eq!(answer.status(), 400, "{}", answer.text);
    assert_eq!(answer.error_type(), "body_incomplete");
    assert!(fixture.major(id).is_some(), "a DELETE cut short deleted");
    let whole = fixture.delete(id, "Content-Length: 0\r\n");
    assert_eq!(send_whole(fixture.port(), &whole).status(), 204);
    assert!(fixture.major(id).is_none());
}

#[test]
fn a_form_field_named_method_never_turns_a_post_into_another_method() {
    let fixture = Fixture::start();
    let form = |id: i64, body: &str| {
        format!(
            "POST /students/{id} HTTP/1.1\r\nHost: localhost\r\n{}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            fixture.auth(),
            body.len()
        )
    };
    for body in ["_method=DELETE", "_method=delete", "_method=PATCH&major=Z"] {
        let id = fixture.new_student();
        let answer = send_whole(fixture.port(), &form(id, body));
        assert_eq!(answer.status(), 400, "{body}: {}", answer.text);
        assert_eq!(answer.error_type(), "method_override", "{body}");
        assert_eq!(
            fixture.major(id).as_deref(),
            Some("Before"),
            "{body}: acted on"
        );
    }
    // Any other form is what it says: a POST, which that path does not take.
    let id = fixture.new_student();
    let answer = send_whole(fixture.port(), &form(id, "major=Z&_method=DELETE"));
    assert_eq!(answer.status(), 405, "{}", answer.text);
    assert!(fixture.major(id).is_some());
    // The twin: the DELETE asked for in the request line runs.
    let answer = send_whole(fixture.port(), &fixture.delete(id, ""));
    assert_eq!(answer.status(), 204, "{}", answer.text);
    assert!(fixture.major(id).is_none());
}

#[test]
fn a_request_hidden_behind_an_ambiguous_length_never_runs_and_the_connection_closes() {
    let fixture = Fixture::start();
    let smuggle = |id: i64, headers: &str| {
        let hidden = format!("0\r\n\r\n{}", fixture.delete(id, "Content-Length: 0\r\n"));
        let headers = headers.replace("LENGTH", &hidden.len().to_string());
        format!("GET /health HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n{hidden}")
    };

    // Both headers in sight: refused, and nothing after it on the connection is read.
    let id = fixture.new_student();
    let request = smuggle(
        id,
        "Content-Length: LENGTH\r\nTransfer-Encoding: chunked\r\n",
    );
    let answer = send(fixture.port(), request.as_bytes(), false);
    assert_eq!(answer.status(), 400, "{}", answer.text);
    assert_eq!(answer.error_type(), "framing_ambiguous");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(answer.closed && answer.answers() == 1, "{}", answer.text);
    assert!(fixture.major(id).is_some(), "the hidden DELETE ran");

    // Transfer-Encoding first: hyper drops the Content-Length that follows, so the service sees
    // a chunked request. It answers it, but closes the connection after any chunked request.
    let id = fixture.new_student();
    let request = smuggle(
        id,
        "Transfer-Encoding: chunked\r\nContent-Length: LENGTH\r\n",
    );
    let answer = send(fixture.port(), request.as_bytes(), false);
    assert_eq!(answer.status(), 200, "{}", answer.text);
    assert!(answer.closed && answer.answers() == 1, "{}", answer.text);
    assert!(fixture.major(id).is_some(), "the hidden DELETE ran");

    // The twin: the same DELETE behind an honest request runs, on a connection kept open.
    let id = fixture.new_student();
    let honest = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n{}",
        fixture.delete(id, "Content-Length: 0\r\n")
    );
    let answer = send(fixture.port(), honest.as_bytes(), false);
    assert_eq!(answer.answers(), 2, "{}", answer.text);
    assert!(!answer.closed, "an honest connection was closed");
    assert!(
        fixture.major(id).is_none(),
        "the pipelined DELETE did not run"
    );
}

#[test]
fn a_request_needs_exactly_one_valid_host() {
    let fixture = Fixture::start();
    let cases = [
        ("no Host", "GET /students/1 HTTP/1.1\r\n\r\n"),
        (
            "two Hosts",
            "GET /students/1 HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        ),
        (
            "a Host that is not a host",
            "GET /students/1 HTTP/1.1\r\nHost: a/b\r\n\r\n",
        ),
        ("HTTP/1.0 without Host", "GET /students/1 HTTP/1.0\r\n\r\n"),
    ];
    for (what, request) in cases {
        let answer = send(fixture.port(), request.as_bytes(), false);
        assert_eq!(answer.status(), 400, "{what}: {}", answer.text);
        assert_eq!(answer.error_type(), "host_invalid", "{what}");
        assert!(answer.closed, "{what}: the connection was left open");
    }
    for (what, request) in [
        (
            "one Host",
            "GET /students/1 HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
        (
            "HTTP/1.0 with a Host",
            "GET /students/1 HTTP/1.0\r\nHost: a.example\r\n\r\n",
        ),
    ] {
        let answer = send_whole(fixture.port(), request);
        assert_eq!(answer.status(), 200, "{what}: {}", answer.text);
    }
}

#[test]
fn every_error_answer_and_the_metrics_are_never_stored_by_a_cache() {
    let fixture = Fixture::start();
    let metrics_only = tokens::create(
        &mut crate::helpers::connect(fixture._db.url()),
        "scraper",
        Scope::Metrics,
    )
    .unwrap();
    let json = |method: &str, path: &str, auth: &str, content_type: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let auth = fixture.auth();
    let scraper = format!("Authorization: Bearer {metrics_only}\r\n");
    // Over Rocket's default 1 MiB: the binary runs here without the shipped Rocket.toml.
    let big = format!(r#"{{"first_name": "{}"}}"#, "a".repeat(1_100_000));
    let cases = [
        (
            400,
            json("POST", "/students", &auth, "application/json", "{"),
        ),
        (401, json("POST", "/students", "", "application/json", "{}")),
        (
            403,
            json("POST", "/students", &scraper, "application/json", "{}"),
        ),
        (
            404,
            "GET /students/999999 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
        ),
        (
            405,
            "PUT /students HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".into(),
        ),
        (
            413,
            json("POST", "/students", &auth, "application/json", &big),
        ),
        (415, json("POST", "/students", &auth, "text/plain", "{}")),
        (
            422,
            json("POST", "/students", &auth, "application/json", "{}"),
        ),
        (
            405,
            "FOO /students HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
        ),
        (
            200,
            format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n"),
        ),
    ];
    for (status, request) in cases {
        let answer = send_whole(fixture.port(), &request);
        let line = request.lines().next().unwrap();
        assert_eq!(
            answer.status(),
            status,
            "{line} ({status}): {}",
            answer.text
        );
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{line}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{line}"
        );
    }
    // The twin: a public read may be cached as HTTP allows.
    let answer = send_whole(
        fixture.port(),
        "GET /students HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.header("cache-control"), None);
}

#[test]
fn a_method_rocket_does_not_know_is_logged_counted_and_answered_like_any_405() {
    let fixture = Fixture::start();
    let unknown = send_whole(
        fixture.port(),
        "FOO /students HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let known = send_whole(
        fixture.port(),
        "PUT /students HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    );
    for (what, answer) in [("FOO", &unknown), ("PUT", &known)] {
        assert_eq!(answer.status(), 405, "{what}: {}", answer.text);
        assert_eq!(answer.header("allow"), Some("GET, HEAD, POST"), "{what}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let metrics = send_whole(
        fixture.port(),
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
            fixture.auth()
        ),
    );
    assert!(
        metrics
            .text
            .contains(r#"http_requests_total{method="-",route="unmatched",status="405"} 1"#),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains(r#"http_requests_total{method="PUT",route="unmatched",status="405"} 1"#)
    );
    let Fixture { service, .. } = fixture;
    let log = service.stop();
    assert!(log.contains("\n- /students 405 "), "{log}");
    assert!(log.contains("\nPUT /students 405 "), "{log}");
}
