//! The progress log of a batched migration.

use std::time::{Duration, Instant};

use diesel::migration::{self};
use diesel::prelude::*;

use super::source::EmbeddedMigration;

/// What a batched migration's `remaining_rows` query says, before the first batch.
pub(super) fn rows_left(conn: &mut PgConnection, query: &str) -> migration::Result<u64> {
    #[derive(QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let sql = format!(
        "SELECT ({})::bigint AS rows",
        query.trim().trim_end_matches(';')
    );
    let left = diesel::sql_query(sql).get_result::<Left>(conn)?;
    Ok(left.rows.max(0) as u64)
}

/// The progress log of a batched migration: rows so far, rows a second and, when the rows left
/// were counted first, about how long is left; at most once a second, and at the end.
pub(super) struct Progress<'a> {
    migration: &'a EmbeddedMigration,
    total: Option<u64>,
    rows: u64,
    batches: u64,
    started: Instant,
    logged: Instant,
}

impl<'a> Progress<'a> {
    const EVERY: Duration = Duration::from_secs(1);

    pub(super) fn new(migration: &'a EmbeddedMigration, total: Option<u64>) -> Self {
        let now = Instant::now();
        if let Some(total) = total {
            log::info!(
                "migration {migration}: about {} rows to change",
                thousands(total)
            );
        }
        Progress {
            migration,
            total,
            rows: 0,
            batches: 0,
            started: now,
            logged: now,
        }
    }

    fn rate(&self) -> f64 {
        self.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    pub(super) fn batch(&mut self, changed: usize) {
        self.rows += changed as u64;
        self.batches += 1;
        if self.logged.elapsed() < Self::EVERY {
            return;
        }
        self.logged = Instant::now();
        let rate = self.rate();
        let left = match self.total {
            Some(total) if rate > 0.0 => {
                let seconds = total.saturating_sub(self.rows) as f64 / rate;
                format!(", about {seconds:.0} s left")
            }
            _ => String::new(),
        };
        log::info!(
            "migration {}: {} rows changed in {} batches, {} rows a second{left}",
            self.migration,
            thousands(self.rows),
            self.batches,
            thousands(rate as u64)
        );
    }

    pub(super) fn done(&self) {
        log::info!(
            "migration {}: no row left to change: {} rows in {} batches, {:.1} s, {} rows a second",
            self.migration,
            thousands(self.rows),
            self.batches,
            self.started.elapsed().as_secs_f64(),
            thousands(self.rate() as u64)
        );
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn counts_are_logged_with_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }
}
