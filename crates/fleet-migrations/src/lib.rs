//! Migrations for a diesel service that runs as a fleet of replicas on PostgreSQL: diesel's own
//! `MigrationHarness` decides what runs, and a [`Migrator`] adds what production needs and diesel
//! lacks:
//! - an advisory lock, so replicas starting together migrate once ([`lock`]);
//! - a SHA-256 of each migration's `up.sql` and `down.sql`, recorded with diesel's own
//!   bookkeeping row, so a migration edited after it ran, or one missing from the binary, stops
//!   the service instead of silently diverging;
//! - a refusal to apply a migration older than one already applied, as a branch merged late
//!   would have it, unless asked to ([`Order`]);
//! - short lock waits, retried, that name the session in the way ([`waits`]);
//! - batched data migrations, one transaction per batch until a batch changes no row;
//! - post-deploy (contract) steps that a fleet applies after its rollout ([`PostDeploy`]);
//! - a check of the live schema against the service's `schema.rs` ([`drift`], [`readiness`]);
//! - targets (`--to VERSION`, `-n N`, `--all`) and the SQL printed instead of run;
//! - the `migrate` subcommands ([`cli`]) and the build-time embedding ([`build`]).
//!
//! It has no web framework in it: a service passes its migrations, its lock key, the name of its
//! command and its waits (the README of this crate shows how).
//!
//! With `default-features = false, features = ["build"]`, only [`build`] is compiled: what a
//! build script needs, without diesel.

#[cfg(feature = "build")]
pub mod build;

#[cfg(feature = "runtime")]
mod runtime;
#[cfg(feature = "runtime")]
pub use runtime::*;
