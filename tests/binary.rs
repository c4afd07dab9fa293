//! The shipped binary as a process: what `scripts/serve.sh` and the Docker image run.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;
use serde_json::Value;

/// Kills the service when a test ends, whether it passed or not.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn binary(database_url: &str, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_students-api"));
    command
        // A directory with no Rocket.toml and no .env: only what is set here applies.
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_LOG_LEVEL", "normal")
        .env("ROCKET_CLI_COLORS", "false")
        .stdin(Stdio::null());
    command
}

/// `GET path` over plain HTTP/1.1; the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    request(port, "GET", path).map(|(status, _, body)| (status, body))
}

/// `method path` over plain HTTP/1.1; the status, the head and the body.
fn request(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}

#[test]
fn the_binary_migrates_a_fresh_database_and_serves_the_five_students_over_http() {
    let db = TestDb::new();
    let port = free_port();
    let mut service = Service(
        binary(db.url(), port)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the binary"),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, body) = loop {
        if let Ok(answer) = get(port, "/students") {
            break answer;
        }
        if let Some(exit) = service.0.try_wait().unwrap() {
            panic!("the service exited before serving: {exit}");
        }
        assert!(Instant::now() < deadline, "the service never answered");
        std::thread::sleep(Duration::from_millis(50));
    };

    assert_eq!(status, 200, "{body}");
    let students: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
    assert_eq!(students.len(), 5);
    assert_eq!(students[0]["first_name"], "Alice");

    // Rocket cannot parse a method it does not know; it still gets the JSON 405 of any other.
    let (status, head, body) = request(port, "QUERY", "/students").unwrap();
    assert_eq!(status, 405, "{head}\n{body}");
    assert!(
        head.to_lowercase().contains("allow: get, head, post"),
        "{head}"
    );
    assert_eq!(body, r#"{"detail":"Method Not Allowed"}"#);

    let _ = service.0.kill();
    let mut log = String::new();
    service
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("applied migration 2026-11-27-163402-0000_create_student"),
        "the log names each migration it applied:\n{log}"
    );
}

#[test]
fn the_binary_exits_non_zero_with_a_clear_message_when_the_database_is_unreachable() {
    // Nothing listens on a port we just released.
    let url = format!("postgres://nobody:nothing@127.0.0.1:{}/none", free_port());
    let output = binary(&url, free_port()).output().expect("run the binary");

    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("cannot connect to the database to migrate it"),
        "{log}"
    );
}
