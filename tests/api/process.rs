//! The shipped binary as a process, for behaviour that is about processes: start-up, exit status,
//! several replicas at once, the `migrate` subcommands; and plain HTTP/1.1 to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A running service, killed when the test ends whether it passed or not.
pub struct Service {
    pub child: Child,
    pub port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts the binary on a free port with its output captured.
    pub fn start(database_url: &str) -> Service {
        Self::start_with(database_url, &[])
    }

    /// [`Service::start`] with these environment variables set too.
    pub fn start_with(database_url: &str, env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let child = binary(database_url)
            .envs(env.iter().copied())
            .env("ROCKET_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        Service { child, port }
    }

    /// Waits until `GET path` answers, or the process exits, or a minute passes.
    pub fn wait_until_serving(&mut self, path: &str) -> Result<(u16, String), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((status, _, body)) = request(self.port, "GET", path) {
                return Ok((status, body));
            }
            if let Some(exit) = self.child.try_wait().unwrap() {
                return Err(format!("exited with {exit} before serving"));
            }
            if Instant::now() > deadline {
                return Err("never answered".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the service and returns everything it wrote.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut log = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut log).unwrap();
        }
        if let Some(mut err) = self.child.stderr.take() {
            err.read_to_string(&mut log).unwrap();
        }
        log
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The binary, configured only by what is set here.
pub fn binary(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_students-api"));
    command
        // A directory with no Rocket.toml and no .env.
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_LOG_LEVEL", "normal")
        .env("ROCKET_CLI_COLORS", "false")
        .stdin(Stdio::null());
    command
}

/// What a process that ran to completion did.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Runs `command` to completion.
    pub fn of(command: &mut Command) -> Ran {
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("run the binary");
        Ran {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Everything it wrote, stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `students-api migrate <args>` against `database_url`, to completion.
pub fn migrate(database_url: &str, args: &[&str]) -> Ran {
    Ran::of(binary(database_url).arg("migrate").args(args))
}

/// `method path` over plain HTTP/1.1; the status, the head and the body.
pub fn request(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    request_with(port, method, path, &[])
}

/// [`request`] with these headers.
pub fn request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    exchange(port, method, path, headers, "")
}

/// `method path` with a JSON `body` and `token`; the status, the head and the body.
pub fn send_json(
    port: u16,
    token: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> std::io::Result<(u16, String, String)> {
    let authorization = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", &authorization),
    ];
    exchange(port, method, path, &headers, &body.to_string())
}

fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let headers: String = (headers.iter())
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let length = body.len();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {length}\r\n\
         Connection: close\r\n\r\n{body}"
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
