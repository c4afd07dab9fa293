//! The advisory lock that makes migrating safe with several replicas starting at once.
//!
//! Waiting is done by polling `pg_try_advisory_lock`, never by blocking in `pg_advisory_lock`:
//! a session blocked there sits inside a statement with a snapshot, and `CREATE INDEX
//! CONCURRENTLY` run by the lock holder waits for every such snapshot to end, so the two would
//! wait for each other forever.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Takes the lock `key` on `conn` (a session lock: it lasts until released or the connection
/// closes), waiting up to `timeout` for another holder to finish. `Ok(false)` when the wait ran
/// out.
pub fn acquire(conn: &mut PgConnection, key: i64, timeout: Duration) -> QueryResult<bool> {
    let deadline = Instant::now() + timeout;
    let mut announced = false;
    loop {
        let Locked { locked } = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<BigInt, _>(key)
            .get_result(conn)?;
        if locked {
            if announced {
                log::info!("took the migration lock");
            }
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        if !announced {
            log::info!(
                "another process holds the migration lock; waiting up to {}s",
                timeout.as_secs()
            );
            announced = true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

pub fn release(conn: &mut PgConnection, key: i64) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(key)
        .execute(conn)
        .map(drop)
}
