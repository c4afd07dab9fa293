//! The schema is owned by the migrations in `migrations/`: the service applies them at ignition,
//! exactly once, and every one of them can be reverted.

mod common;

use common::{
    TestDb, applied_versions, client, figment, public_objects, revert_through, table_exists,
};
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use rocket::http::Status;
use rocket::local::blocking::Client;
use serde_json::{Value, json};
use students_api::db::{MIGRATIONS, run_pending_migrations};
use students_api::schema::student;

/// Versions as diesel derives them from the folder names under `migrations/`, read from disk so
/// the test does not trust the embedded list it is checking.
fn versions_on_disk() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut versions: Vec<String> = std::fs::read_dir(dir)
        .expect("read migrations/")
        .map(|entry| entry.expect("read migrations/ entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .map(|name| {
            let (version, _) = name.split_once('_').expect("folder is <version>_<name>");
            version.replace('-', "")
        })
        .collect();
    versions.sort();
    versions
}

#[test]
fn ignition_applies_every_migration_to_an_empty_database_and_records_each_version() {
    let db = TestDb::new();
    let _client = client(&db);

    let mut conn = db.connect();
    assert_eq!(applied_versions(&mut conn), versions_on_disk());
    assert!(table_exists(&mut conn, "student"));
}

#[test]
fn running_the_migrations_again_is_a_no_op() {
    let db = TestDb::new();
    let client = client(&db);
    let mut conn = db.connect();
    let before = applied_versions(&mut conn);

    let applied = run_pending_migrations(&mut conn, MIGRATIONS).expect("migrate again");
    assert!(applied.is_empty(), "re-applied {applied:?}");
    // A second start over the same database must not seed twice either.
    let second = Client::tracked(students_api::build(figment(&db))).expect("second start");

    assert_eq!(applied_versions(&mut conn), before);
    for client in [&client, &second] {
        let students: Vec<Value> = client.get("/students").dispatch().into_json().unwrap();
        assert_eq!(students.len(), 5);
    }
}

#[test]
fn reverting_back_through_the_seed_migration_leaves_the_student_table_empty() {
    let db = TestDb::new();
    let _client = client(&db);
    let mut conn = db.connect();

    revert_through(&mut conn, "_seed_student_data");

    assert!(table_exists(&mut conn, "student"));
    let count: i64 = student::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 0);
}

#[test]
fn an_empty_table_lists_as_an_empty_array() {
    let db = TestDb::new();
    let client = client(&db);
    diesel::delete(student::table)
        .execute(&mut db.connect())
        .unwrap();

    let response = client.get("/students").dispatch();

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_json::<Value>().unwrap(), json!([]));
}

#[test]
fn reverting_the_seed_removes_only_the_seeded_students() {
    let db = TestDb::new();
    let _client = client(&db);
    let mut conn = db.connect();
    diesel::sql_query(
        "INSERT INTO student (first_name, last_name, major) VALUES ('Grace', 'Hopper', 'Navy')",
    )
    .execute(&mut conn)
    .unwrap();

    revert_through(&mut conn, "_seed_student_data");

    let left: Vec<String> = student::table
        .select(student::first_name)
        .load(&mut conn)
        .unwrap();
    assert_eq!(left, ["Grace"]);
}

#[test]
fn reverting_every_migration_leaves_only_diesels_bookkeeping_table() {
    let db = TestDb::new();
    let _client = client(&db);
    let mut conn = db.connect();

    conn.revert_all_migrations(MIGRATIONS).expect("revert all");

    assert_eq!(public_objects(&mut conn), ["__diesel_schema_migrations"]);
    assert!(applied_versions(&mut conn).is_empty());
}

#[test]
fn every_migration_can_be_reverted_and_applied_again() {
    let db = TestDb::new();
    let mut conn = db.connect();
    run_pending_migrations(&mut conn, MIGRATIONS).expect("migrate");
    let migrated = public_objects(&mut conn);

    let count = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .unwrap()
        .len();
    for _ in 0..count {
        conn.revert_last_migration(MIGRATIONS).expect("revert");
    }
    let applied = run_pending_migrations(&mut conn, MIGRATIONS).expect("migrate again");

    assert_eq!(applied.len(), count);
    assert_eq!(public_objects(&mut conn), migrated);
}

#[test]
fn with_migrate_on_start_off_ignition_leaves_the_database_untouched() {
    let db = TestDb::new();
    let rocket = students_api::build(figment(&db).merge(("migrate_on_start", false)));
    let _client = Client::tracked(rocket).expect("ignites without migrating");

    let mut conn = db.connect();
    assert!(public_objects(&mut conn).is_empty());
}

const BROKEN: EmbeddedMigrations = embed_migrations!("tests/broken_migrations");

#[test]
fn a_failing_migration_is_named_and_leaves_the_database_at_the_version_before_it() {
    let db = TestDb::new();
    let mut conn = db.connect();

    let err = run_pending_migrations(&mut conn, BROKEN).unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("2020-01-02-000000-0000_broken"),
        "{message}"
    );
    assert!(message.contains("no_such_table"), "{message}");
    assert_eq!(applied_versions(&mut conn), ["202001010000000000"]);
    assert!(table_exists(&mut conn, "thing"));
    assert!(!table_exists(&mut conn, "half_done"));
}

#[test]
fn a_failing_migration_stops_the_service_from_starting() {
    let db = TestDb::new();
    let rocket = rocket::build()
        .configure(figment(&db))
        .attach(students_api::db::stage_with(BROKEN));

    let ignition = rocket::execute(rocket.ignite());

    let err = ignition.expect_err("ignition must fail");
    assert!(matches!(
        err.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
    let mut conn = db.connect();
    assert!(!table_exists(&mut conn, "half_done"));
}
