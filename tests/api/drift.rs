//! A live schema changed by hand, away from the `src/schema.rs` the binary was compiled with, turns
//! `/ready` 503 naming the column, fails `migrate verify`, and refuses the start; pending
//! migrations and columns the binary does not know are not drift.

use diesel::connection::SimpleConnection;
use rocket::http::Status;
use serde_json::Value;

use crate::helpers::{TestDb, client, client_with, figment, revert_through};
use crate::process::{Ran, binary, free_port, migrate};

/// `/ready`'s status and detail on `db`, for a service started before `change`.
fn ready_after(db: &TestDb, change: &str) -> (Status, String) {
    let client = client(db);
    db.connect().batch_execute(change).unwrap();
    let response = client.get("/ready").dispatch();
    let status = response.status();
    let body: Value = response.into_json().unwrap();
    let detail = body["detail"].as_str().unwrap_or_default().to_owned();
    (status, detail)
}

#[test]
fn a_column_renamed_by_hand_turns_ready_503_naming_it_fails_verify_and_refuses_the_start() {
    let db = TestDb::migrated();
    let rename = "ALTER TABLE student RENAME COLUMN major TO field_of_study";

    let (status, detail) = ready_after(&db, rename);
    assert_eq!(status, Status::ServiceUnavailable, "{detail}");
    assert!(detail.starts_with("Schema drift: "), "{detail}");
    assert!(
        detail.contains("student.major is missing (this binary reads it as text NOT NULL)"),
        "{detail}"
    );

    let verify = migrate(db.url(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", verify.text());
    assert!(
        verify
            .stdout
            .contains("DRIFT student.major is missing (this binary reads it as text NOT NULL)"),
        "{}",
        verify.stdout
    );

    let start = Ran::of(binary(db.url()).env("ROCKET_PORT", free_port().to_string()));
    assert_eq!(start.status.code(), Some(1), "{}", start.text());
    assert!(
        start.text().contains("student.major is missing"),
        "{}",
        start.text()
    );
    assert!(
        start.text().contains("the service will not start"),
        "{}",
        start.text()
    );
}

#[test]
fn a_changed_type_and_a_dropped_not_null_are_drift_too() {
    for (change, expected) in [
        (
            "ALTER TABLE student ALTER COLUMN first_name TYPE varchar(100)",
            "student.first_name is varchar in the database, text in this binary",
        ),
        (
            "ALTER TABLE student ALTER COLUMN major DROP NOT NULL",
            "student.major is nullable in the database, NOT NULL in this binary",
        ),
        (
            "UPDATE student SET email = 's' || id || '@example.edu'; \
             ALTER TABLE student ALTER COLUMN email SET NOT NULL",
            "student.email is NOT NULL in the database, nullable in this binary",
        ),
        ("DROP TABLE student CASCADE", "table student is missing"),
    ] {
        let db = TestDb::migrated();
        let (status, detail) = ready_after(&db, change);
        assert_eq!(status, Status::ServiceUnavailable, "{change}: {detail}");
        assert!(detail.contains(expected), "{change}: {detail}");
    }
}

#[test]
fn negative_control_columns_the_binary_does_not_know_are_no_drift() {
    // A newer release's expand step: the binary serves on, and verify passes.
    let db = TestDb::migrated();
    let (status, detail) = ready_after(&db, "ALTER TABLE student ADD COLUMN nickname text");
    assert_eq!(status, Status::Ok, "{detail}");
    assert!(migrate(db.url(), &["verify"]).status.success());
}

#[test]
fn while_a_migration_it_needs_is_pending_the_binary_starts_and_ready_names_the_migration() {
    // As during a release's migration Job: the schema is behind, which pending migrations
    // explain, so this is not drift, and the replica waits rather than exits.
    let db = TestDb::migrated();
    revert_through(&mut db.connect(), "_add_student_email");

    let client = client_with(figment(&db).merge(("migrate_on_start", false)));
    let response = client.get("/ready").dispatch();
    assert_eq!(response.status(), Status::ServiceUnavailable);
    let body: Value = response.into_json().unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("Migrations pending: "), "{detail}");
    assert!(!detail.contains("drift"), "{detail}");
}
