//! The integration tests, one module per capability, in one crate so that the service is linked
//! once. Every test that touches data runs against real PostgreSQL (`scripts/test.sh` starts one).

mod helpers;
mod pooler;
mod process;

mod access;
mod bad_input;
mod batched;
mod binary;
mod cli;
mod drift;
mod enrolled_on;
mod errors;
mod framing;
mod health;
mod idempotency;
mod least_privilege;
mod lock_waits;
mod metrics;
mod migration_order;
mod migration_rules;
mod migration_safety;
mod migrations;
mod openapi;
mod pgbouncer;
mod settings;
mod students;
