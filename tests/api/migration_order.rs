//! A pending migration older than the newest applied one, as a branch merged after newer
//! migrations ran leaves it, is refused before anything is applied, everywhere that applies
//! migrations, and shown wherever migrations are inspected; `--allow-out-of-order` applies it on
//! purpose.

use diesel::prelude::*;
use rocket::http::Status;
use serde_json::Value;
use students_api::migrate::{
    ApplyTarget, EmbeddedMigration, MigrateError, Migrations, Migrator, Order, PostDeploy,
    RevertTarget, Waits, migrations,
};

use crate::helpers::{FILES, TestDb, applied_versions, client_with, figment, students_fingerprint};
use crate::process::{Ran, binary, free_port, migrate};

const SEED: &str = "2026-11-27-163402-0001_seed_student_data";
/// The newest migration, which the seed is older than.
fn newest() -> &'static str {
    FILES.last().unwrap().name
}

/// A fully migrated database whose seed migration looks unapplied: to diesel, exactly a
/// migration merged from a branch with an older timestamp.
fn seed_merged_late() -> TestDb {
    let db = TestDb::migrated();
    let version = FILES.iter().find(|m| m.name == SEED).unwrap().version();
    for table in ["__diesel_schema_migrations", "__migration_checksums"] {
        diesel::sql_query(format!("DELETE FROM {table} WHERE version = '{version}'"))
            .execute(&mut db.connect())
            .unwrap();
    }
    db
}

fn assert_names_both_and_the_fix(text: &str) {
    let newest_stamp = newest().split('_').next().unwrap();
    for needle in [
        SEED,
        newest(),
        "out of order",
        &format!("Give it a timestamp after {newest_stamp}"),
        "students-api migrate run --allow-out-of-order",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn migrate_run_refuses_an_out_of_order_migration_with_or_without_to_and_applies_nothing() {
    let db = seed_merged_late();
    let mut conn = db.connect();
    let (before, versions) = (students_fingerprint(&mut conn), applied_versions(&mut conn));

    for args in [&["run"][..], &["run", "--to", SEED], &["redo"]] {
        let ran = migrate(db.url(), args);
        assert_eq!(ran.status.code(), Some(1), "{args:?}: {}", ran.text());
        assert_names_both_and_the_fix(&ran.stderr);
        assert!(
            ran.stderr
                .starts_with("error: refusing to apply migrations out of order")
        );
        assert_eq!(
            students_fingerprint(&mut conn),
            before,
            "{args:?} wrote rows"
        );
        assert_eq!(applied_versions(&mut conn), versions, "{args:?}");
    }
}

#[test]
fn status_and_verify_show_an_out_of_order_migration_and_exit_1() {
    let db = seed_merged_late();

    let status = migrate(db.url(), &["status"]);
    assert_eq!(status.status.code(), Some(1), "{}", status.text());
    let line = (status.stdout.lines())
        .find(|line| line.starts_with(SEED))
        .unwrap_or_else(|| panic!("no row for the seed:\n{}", status.stdout));
    assert!(line.contains("pending"), "{line}");
    assert!(
        line.contains(&format!("OUT OF ORDER: older than {}", newest())),
        "{line}"
    );
    assert_names_both_and_the_fix(&status.stderr);

    let verify = migrate(db.url(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", verify.text());
    assert!(
        verify.stdout.starts_with("MISMATCH migration "),
        "{}",
        verify.stdout
    );
    assert_names_both_and_the_fix(&verify.stdout);
}

#[test]
fn the_service_refuses_to_start_on_it_and_without_migrating_answers_ready_503_naming_it() {
    let db = seed_merged_late();
    let before = students_fingerprint(&mut db.connect());

    let start = Ran::of(binary(db.url()).env("ROCKET_PORT", free_port().to_string()));
    assert_eq!(start.status.code(), Some(1), "{}", start.text());
    assert_names_both_and_the_fix(&start.text());
    assert_eq!(students_fingerprint(&mut db.connect()), before);

    // Migrating in a separate step, the replica starts and says why it is not ready.
    let client = client_with(figment(&db).merge(("migrate_on_start", false)));
    let response = client.get("/ready").dispatch();
    assert_eq!(response.status(), Status::ServiceUnavailable);
    let body: Value = response.into_json().unwrap();
    assert_names_both_and_the_fix(body["detail"].as_str().unwrap());
}

#[test]
fn the_same_migrations_applied_in_order_are_accepted() {
    // The negative control: a database where nothing is pending out of order starts and
    // verifies, so the refusals above come from the order alone.
    let db = TestDb::migrated();
    assert!(migrate(db.url(), &["verify"]).status.success());
    let ran = migrate(db.url(), &["redo"]);
    assert!(ran.status.success(), "{}", ran.text());
    let status = migrate(db.url(), &["status"]);
    assert!(status.status.success(), "{}", status.text());
    assert!(!status.stdout.contains("OUT OF ORDER"));
}

const CREATE_THING: EmbeddedMigration = EmbeddedMigration {
    name: "2020-01-01-000000-0000_create_thing",
    up: "CREATE TABLE thing (id int);",
    down: Some("DROP TABLE thing;"),
    run_in_transaction: true,
    post_deploy: false,
    batch: None,
};
const ADD_SIZE: EmbeddedMigration = EmbeddedMigration {
    name: "2020-01-02-000000-0000_add_size",
    up: "ALTER TABLE thing ADD COLUMN size int;",
    down: Some("ALTER TABLE thing DROP COLUMN size;"),
    ..CREATE_THING
};
const ADD_LABEL: EmbeddedMigration = EmbeddedMigration {
    name: "2020-01-03-000000-0000_add_label",
    up: "ALTER TABLE thing ADD COLUMN label text;",
    down: Some("ALTER TABLE thing DROP COLUMN label;"),
    ..CREATE_THING
};
/// Two migrations of their own table, applied; then the same with one merged late between them.
const A_THEN_C: Migrations = migrations(&[CREATE_THING, ADD_LABEL]);
const WITH_B_MERGED_LATE: Migrations = migrations(&[CREATE_THING, ADD_SIZE, ADD_LABEL]);

#[test]
fn allow_out_of_order_applies_it_on_purpose_and_revert_is_never_refused() {
    let db = TestDb::empty();
    let migrator = |set| Migrator::connect(db.url(), set, Waits::default()).unwrap();
    migrator(A_THEN_C)
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();

    let err = migrator(WITH_B_MERGED_LATE)
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap_err();
    assert!(matches!(err, MigrateError::OutOfOrder(_)), "{err:?}");
    assert_eq!(applied_versions(&mut db.connect()).len(), 2);

    // Reverting the newer migration is one way back to order, so it is not refused.
    let reverted = migrator(WITH_B_MERGED_LATE)
        .revert(&RevertTarget::Last(1))
        .unwrap();
    assert_eq!(reverted, [ADD_LABEL.name]);
    migrator(A_THEN_C)
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();

    let applied = migrator(WITH_B_MERGED_LATE)
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::AllowOutOfOrder)
        .unwrap();
    assert_eq!(applied, [ADD_SIZE.name]);
    assert_eq!(applied_versions(&mut db.connect()).len(), 3);
}
