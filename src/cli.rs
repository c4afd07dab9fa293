//! The command line: no subcommand serves; `migrate ...` inspects and steers migrations from the
//! shipped binary, where no diesel CLI is installed (the Docker image, say); `token ...` manages
//! the API's bearer tokens.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::migrate::cli::MigrateCommand;
use crate::migrate::{MIGRATIONS, Migrator, Waits};
use crate::settings::{self, Settings};

mod token;

pub use token::{ScopeArg, TokenCommand, token};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The Students API, and the migrations of its database"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (what running with no subcommand does).
    Serve,
    /// Inspect and steer the database's migrations (uses DATABASE_URL, like the service).
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Create, list and revoke the API's bearer tokens (uses DATABASE_URL, like the service).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Ask the service running on this machine (at the configured address and port) whether it
    /// is ready; exit status 0 if it is, 1 if not. The Docker image's HEALTHCHECK runs it.
    Healthcheck,
}

/// Why a subcommand could not do its work: one line on standard error, and exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    #[error(transparent)]
    Token(#[from] crate::auth::tokens::TokenError),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// The database is not ready for the command: the message says what to do.
    #[error("{0}")]
    NotReady(&'static str),
}

/// Runs a `migrate` subcommand against the configured database, under the migration lock.
pub fn migrate(command: &MigrateCommand) -> ExitCode {
    crate::logging::for_command();
    let run = || -> Result<ExitCode, CommandError> {
        let settings = Settings::from_figment(settings::figment())?;
        let waits = Waits::from(&settings.service);
        let mut migrator = Migrator::connect(settings.database_url(), MIGRATIONS, waits)?;
        Ok(crate::migrate::cli::run(command, &mut migrator)?)
    };
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `students-api healthcheck`: what `/ready` answers, as an exit status.
pub fn healthcheck() -> ExitCode {
    // Under the HEALTHCHECK's own timeout, so that Docker records this message, not its own.
    let timeout = Duration::from_secs(2);
    let answer = Settings::from_figment(settings::figment())
        .map_err(|err| err.to_string())
        .and_then(|settings| ask_ready(settings.listen_address(), timeout));
    match answer {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("not ready: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The client side of `/ready`, which the image's `HEALTHCHECK` then needs no curl for. Returns
/// the answer's body when it is a 200, and otherwise says what answered or failed. std's
/// `TcpStream` is enough: the service speaks plain HTTP on this machine and only the status line
/// matters, so no HTTP client crate.
fn ask_ready(listen: SocketAddr, timeout: Duration) -> Result<String, String> {
    // A service listening on every address is reached on the loopback one.
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, listen.port());
    let failed = |err: std::io::Error| format!("no answer from {target}: {err}");
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(failed)?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    // HTTP/1.0: the server closes the connection after its answer, which ends the read.
    write!(stream, "GET /ready HTTP/1.0\r\nHost: {target}\r\n\r\n").map_err(failed)?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(failed)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default();
    match status.split(' ').nth(1) {
        Some("200") => Ok(body.trim().to_owned()),
        _ => Err(format!("{target} answered {status:?}: {}", body.trim())),
    }
}
