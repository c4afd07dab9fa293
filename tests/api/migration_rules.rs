//! The rules of the migration engine that no database can check, on this service's own history:
//! folders added in their timestamps' order (git), and contract steps marked and post-deploy.

use std::path::Path;

use students_api::migrate::MIGRATIONS;
use students_api::migrate::rules::{contract_steps, history_order};

#[test]
fn migrations_were_added_in_the_order_of_their_timestamps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let problems = history_order(root, "migrations").unwrap_or_else(|err| panic!("{err}"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_contract_step_says_why_and_is_post_deploy() {
    let problems = contract_steps(&MIGRATIONS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
