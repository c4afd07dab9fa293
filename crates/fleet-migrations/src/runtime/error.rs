//! What a migration command can fail with.

use std::error::Error as StdError;

use diesel::ConnectionError;

use super::status::MigrationStatus;

/// Why a migration command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {}", one_line(&.0.to_string()))]
    Connect(#[source] ConnectionError),
    #[error(
        "another process held the migration lock for {seconds}s, so this one gave up; if no \
         migration is running, a session holding advisory lock {key} is stuck (see pg_locks)"
    )]
    LockTimeout { seconds: u64, key: i64 },
    #[error("database error: {0}")]
    Database(#[source] Box<dyn StdError + Send + Sync>),
    #[error("migration {name} failed: {source}. {}", match .transactional {
        true => "It was rolled back whole; the migrations before it stay applied.",
        false => "It runs outside a transaction, so part of it may have been applied; \
                  see its up.sql for how to recover (an index it left INVALID is dropped and \
                  built again by the next run).",
    })]
    Failed {
        name: &'static str,
        transactional: bool,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("reverting migration {name} failed and was rolled back: {source}")]
    RevertFailed {
        name: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error(
        "the database's applied migrations do not match this binary: {}",
        .0.iter().filter_map(MigrationStatus::problem).collect::<Vec<_>>().join("; ")
    )]
    Verification(Vec<MigrationStatus>),
    #[error(
        "refusing to apply migrations out of order, so nothing was applied: {}",
        .0.iter().filter_map(MigrationStatus::problem).collect::<Vec<_>>().join("; ")
    )]
    OutOfOrder(Vec<MigrationStatus>),
    #[error(
        "migration {needed}, which this binary needs, comes after {} still pending: an earlier \
         release's contract steps were never applied. Once no replica of a release before them \
         serves, apply them with `{program} migrate run --to {}`, then run this again",
        match .blocking.len() {
            1 => format!("post-deploy migration {}", .blocking[0]),
            _ => format!("post-deploy migrations {}", .blocking.join(", ")),
        },
        .blocking.last().copied().unwrap_or_default()
    )]
    PostDeployFirst {
        program: &'static str,
        needed: &'static str,
        blocking: Vec<&'static str>,
    },
    #[error("no migration {0:?} in this binary; `migrate status` lists them")]
    UnknownVersion(String),
    #[error("migration {0} is not applied, so there is nothing to revert down to")]
    NotApplied(&'static str),
    #[error("no migration written: {0}")]
    Generate(#[source] Box<super::generate::GenerateError>),
}

/// libpq's messages span lines (`...failed: Connection refused\n\tIs the server running...`);
/// a log line should not.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<diesel::result::Error> for MigrateError {
    fn from(err: diesel::result::Error) -> Self {
        MigrateError::Database(err.into())
    }
}
