//! What a service does with its migrations as it starts: wait for the database, apply what is
//! pending (or not, when migrations run as a step of their own), and say whether the binary can
//! serve the schema it finds.

use std::time::{Duration, Instant};

use diesel::connection::CacheSize;
use diesel::prelude::*;

use super::{ApplyTarget, MigrateError, Migrations, Migrator, Order, PostDeploy, Unready, Waits};

/// What [`on_start`] did and found.
#[derive(Debug)]
pub struct Started {
    /// The migrations applied, oldest first; `None` when asked not to apply any.
    pub applied: Option<Vec<&'static str>>,
    /// Why the binary cannot serve the schema yet, if it cannot: migrations still pending (a
    /// release's migration step to run), out of order, or drift.
    pub unready: Option<Unready>,
}

/// At start: waits up to `patience` for the database at `url`, applies every pending migration
/// of `set` under the lock when `apply` says so (post-deploy ones included, in order), then reads
/// the schema's readiness. Without `apply`, it reads readiness only, and takes no lock.
pub fn on_start(
    url: &str,
    set: Migrations,
    waits: Waits,
    patience: Duration,
    apply: bool,
) -> Result<Started, MigrateError> {
    let mut conn = connect_waiting(url, patience).map_err(MigrateError::Connect)?;
    // A service's URL may lead through a transaction pooler, which mixes named statements of
    // different clients; and this connection runs each of its few statements once, so a cache
    // would buy nothing.
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    if !apply {
        let unready = super::readiness(&mut conn, set)?;
        return Ok(Started {
            applied: None,
            unready,
        });
    }
    let mut migrator = Migrator::with_connection(conn, url, set, waits)?;
    let applied = migrator.run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)?;
    Ok(Started {
        applied: Some(applied),
        unready: migrator.readiness()?,
    })
}

/// Connects to `url`, retrying with backoff for up to `patience` while the database does not
/// answer (it is often still starting when the service does), and logging each failed attempt.
pub fn connect_waiting(url: &str, patience: Duration) -> Result<PgConnection, ConnectionError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match PgConnection::establish(url) {
            Ok(conn) => {
                if attempt > 1 {
                    log::info!("connected to the database on attempt {attempt}");
                }
                return Ok(conn);
            }
            Err(err) if started.elapsed() < patience => {
                // The last wait is cut short so the last attempt falls on the deadline.
                let wait = delay.min(patience.saturating_sub(started.elapsed()));
                log::warn!(
                    "database not reachable (attempt {attempt}, {:.1}s of {}s): {}; retrying in {}ms",
                    started.elapsed().as_secs_f32(),
                    patience.as_secs(),
                    super::one_line(&err.to_string()),
                    wait.as_millis()
                );
                std::thread::sleep(wait);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(err) => {
                log::error!(
                    "gave up on the database after {attempt} attempts in {:.1}s (database_wait = {}s)",
                    started.elapsed().as_secs_f32(),
                    patience.as_secs()
                );
                return Err(err);
            }
        }
    }
    unreachable!("the loop returns")
}
