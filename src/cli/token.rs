//! `students-api token ...`: the API's bearer tokens, made, listed and revoked in the database
//! the service uses (docs/api.md, "Access control").

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use diesel::connection::CacheSize;
use diesel::prelude::*;

use super::CommandError;
use crate::auth::FRESH;
use crate::auth::tokens::{self, Scope};
use crate::migrate;
use crate::settings::{self, Settings};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token named NAME and print it, once, on standard output: only its SHA-256 is
    /// stored, so it cannot be shown again.
    Create {
        /// Unique among live tokens: 1 to 64 letters, digits and `.`, `_`, `@` or `-`.
        name: String,
        /// `students`: read and write students, and scrape /metrics; `metrics`: only scrape
        /// /metrics (Prometheus' token).
        #[arg(long, value_enum, default_value_t = ScopeArg::Students)]
        scope: ScopeArg,
    },
    /// Every token, revoked ones too: name, scope, created, last used (to the minute), revoked.
    List,
    /// Revoke the live token named NAME; every replica refuses it within a second.
    Revoke { name: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScopeArg {
    Students,
    Metrics,
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Scope {
        match scope {
            ScopeArg::Students => Scope::Students,
            ScopeArg::Metrics => Scope::Metrics,
        }
    }
}

/// Runs a `token` subcommand against the configured database. Every failure is one line on
/// standard error and exit status 1.
pub fn token(command: &TokenCommand) -> ExitCode {
    crate::logging::for_command();
    match run_token(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", migrate::one_line(&err.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn run_token(command: &TokenCommand) -> Result<(), CommandError> {
    let settings = Settings::from_figment(settings::figment())?;
    let mut conn = PgConnection::establish(settings.database_url())?;
    // One-off statements, which may go through a transaction pooler: none is worth preparing.
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    if !migrate::table_exists(&mut conn, "api_token")? {
        return Err(CommandError::NotReady(
            "this database has no api_token table yet: apply the migrations first \
             (`students-api migrate run`)",
        ));
    }
    match command {
        TokenCommand::Create { name, scope } => {
            let token = tokens::create(&mut conn, name, (*scope).into())?;
            eprintln!(
                "created token {name:?} (scope {}); it is printed once, below, and only its \
                 SHA-256 is kept:",
                Scope::from(*scope).as_str()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            let rows = tokens::list(&mut conn)?;
            let width = rows
                .iter()
                .map(|row| row.name.len())
                .max()
                .unwrap_or(0)
                .max(4);
            let at = |at: Option<DateTime<Utc>>| {
                at.map_or("-".to_owned(), |at| {
                    at.format("%Y-%m-%d %H:%M:%S").to_string()
                })
            };
            println!(
                "{:<width$}  {:<8}  {:<19}  {:<19}  REVOKED (UTC)",
                "NAME", "SCOPE", "CREATED", "LAST USED"
            );
            for row in &rows {
                println!(
                    "{:<width$}  {:<8}  {:<19}  {:<19}  {}",
                    row.name,
                    row.scope,
                    at(Some(row.created_at)),
                    at(row.last_used_at),
                    at(row.revoked_at),
                );
            }
            if rows.is_empty() {
                eprintln!("no tokens yet: `students-api token create NAME` makes one");
            }
        }
        TokenCommand::Revoke { name } => {
            tokens::revoke(&mut conn, name)?;
            println!(
                "revoked token {name:?}; every replica refuses it within {} s",
                FRESH.as_secs()
            );
        }
    }
    Ok(())
}
