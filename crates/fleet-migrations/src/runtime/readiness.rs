//! Whether this binary can serve the database as it is: what `/ready` answers and what the
//! start-up stage checks once it has migrated. Takes no lock and writes nothing, so a probe
//! never waits for a running migration.

use std::fmt;

use diesel::prelude::*;

use super::bookkeeping::applied;
use super::drift::{ContractPending, Drift, drift};
use super::source::Migrations;

/// Why the binary cannot serve yet, or at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unready {
    /// A pending migration older than the newest applied one: `migrate run` refuses it until it
    /// is renamed or applied on purpose.
    OutOfOrder {
        pending: &'static str,
        newest_applied: String,
        /// The command that steers the migrations, for the advice.
        program: &'static str,
    },
    /// Migrations this binary needs, not yet applied: a release's migration step is running or
    /// still to come.
    Pending(Vec<&'static str>),
    /// Nothing this binary needs is pending, and still the live schema differs from the one its
    /// queries were compiled against.
    Drift(Vec<Drift>),
}

impl fmt::Display for Unready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unready::OutOfOrder {
                pending,
                newest_applied,
                program,
            } => write!(f, "{}", out_of_order(pending, newest_applied, program)),
            Unready::Pending(names) => write!(f, "Migrations pending: {}", names.join(", ")),
            Unready::Drift(drift) => {
                let drift: Vec<String> = drift.iter().map(Drift::to_string).collect();
                write!(
                    f,
                    "Schema drift: the database does not match this binary's src/schema.rs \
                     though no migration it needs is pending: {}",
                    drift.join("; ")
                )
            }
        }
    }
}

/// What is wrong with applying `pending` after `newest_applied`, and the two ways out.
pub fn out_of_order(pending: &str, newest_applied: &str, program: &str) -> String {
    let newest_prefix = newest_applied.split('_').next().unwrap_or(newest_applied);
    format!(
        "migration {pending} is pending but older than {newest_applied}, which is applied: it was \
         probably merged from a branch after that one ran, and applying it now would run it out \
         of order. Give it a timestamp after {newest_prefix} (rename migrations/{pending}), or, \
         once you have checked that it does not depend on what came after it, apply it on \
         purpose with `{program} migrate run --allow-out-of-order`"
    )
}

/// `None` when the binary can serve: nothing it needs is pending, nothing pending is out of
/// order, and the live schema has every column of `set.schema` as declared.
pub fn readiness(conn: &mut PgConnection, set: Migrations) -> QueryResult<Option<Unready>> {
    let applied: Vec<String> = applied(conn)?.into_iter().map(|(v, _)| v).collect();
    let pending: Vec<_> = (set.list.iter())
        .filter(|migration| !applied.contains(&migration.version()))
        .collect();
    // Oldest first, so the last is the newest.
    if let Some(newest) = applied.last() {
        if let Some(early) = pending.iter().find(|m| m.version() < *newest) {
            return Ok(Some(Unready::OutOfOrder {
                pending: early.name,
                newest_applied: set
                    .find(newest)
                    .map_or_else(|| newest.clone(), |m| m.name.to_owned()),
                program: set.program,
            }));
        }
    }
    // A pending post-deploy migration is a contract step this binary serves without; it is
    // applied after every replica runs this binary, so waiting for it here would keep the new
    // replicas of a rolling upgrade out of service for good.
    let required: Vec<&'static str> = (pending.iter())
        .filter(|migration| !migration.post_deploy)
        .map(|migration| migration.name)
        .collect();
    if !required.is_empty() {
        return Ok(Some(Unready::Pending(required)));
    }
    let contract = match pending.is_empty() {
        true => ContractPending::No,
        false => ContractPending::Yes,
    };
    let drift = drift(conn, set.schema, contract)?;
    Ok((!drift.is_empty()).then_some(Unready::Drift(drift)))
}
