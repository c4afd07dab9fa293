//! `/health` (liveness) and `/ready` (readiness).

use rocket::http::Status;
use serde_json::{Value, json};

use diesel::connection::SimpleConnection;
use students_api::migrate::{self, MIGRATIONS, migrations};

use crate::helpers::{FILES, TestDb, client, client_with, figment};

#[test]
fn health_answers_200_without_touching_the_database() {
    let db = TestDb::migrated();
    let client = client(&db);
    db.refuse_connections();

    let response = client.get("/health").dispatch();

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.into_json::<Value>().unwrap(),
        json!({"status": "ok"})
    );
}

#[test]
fn ready_answers_200_when_the_database_answers_and_nothing_is_pending() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = client.get("/ready").dispatch();

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.into_json::<Value>().unwrap(),
        json!({"status": "ready"})
    );
}

#[test]
fn ready_answers_503_naming_the_pending_migrations() {
    let db = TestDb::migrated();
    let client = client(&db);
    crate::helpers::revert_through(&mut db.connect(), "_validate_student_checks");

    let response = client.get("/ready").dispatch();

    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(response.headers().get_one("Retry-After"), Some("1"));
    let detail = response.into_json::<Value>().unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.starts_with("Migrations pending: "), "{detail}");
    assert!(detail.contains("_validate_student_checks"), "{detail}");
    assert!(detail.contains("_index_student_major"), "{detail}");
    assert!(!detail.contains("_create_student"), "{detail}");
}

/// Where a fleet is between `migrate run --skip-post-deploy` and the end of the rollout of the
/// release that added `enrolled_on`: its backfill and contract steps are post-deploy ones and
/// still pending, and the column `src/schema.rs` declares NOT NULL is still nullable. The later
/// migrations' tables exist (created from their up.sql, unrecorded) so that only the release's
/// own steps differ from `src/schema.rs`.
#[test]
fn ready_while_only_post_deploy_migrations_are_pending() {
    let db = TestDb::migrated();
    let mut conn = db.connect();
    crate::helpers::revert_through(&mut conn, "_index_student_enrolled_on_missing");
    let end = 1
        + (FILES.iter())
            .position(|m| m.name.ends_with("_student_enrolled_on_not_null"))
            .unwrap();
    let (release, later) = FILES.split_at(end);
    for migration in later {
        conn.batch_execute(migration.up).unwrap();
    }

    let unready = migrate::readiness(&mut conn, migrations(release)).unwrap();
    assert!(unready.is_none(), "{unready:?}");
    // The control: this binary, which has the later migrations, is not ready here.
    assert!(migrate::readiness(&mut conn, MIGRATIONS).unwrap().is_some());

    // The expand step, though, is one the release needs.
    crate::helpers::revert_through(&mut conn, "_add_student_enrolled_on");
    let unready = migrate::readiness(&mut conn, migrations(release)).unwrap();
    let detail = unready.expect("not ready").to_string();
    assert!(
        detail.contains("_add_student_enrolled_on,")
            || detail.ends_with("_add_student_enrolled_on"),
        "{detail}"
    );
    assert!(!detail.contains("_backfill_"), "{detail}");
}

#[test]
fn ready_answers_503_when_the_service_was_started_without_migrating() {
    let db = TestDb::empty();
    let client = client_with(figment(&db).merge(("migrate_on_start", false)));

    let response = client.get("/ready").dispatch();

    assert_eq!(response.status(), Status::ServiceUnavailable);
    let body: Value = response.into_json().unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("_diesel_initial_setup"),
        "{body}"
    );
}

#[test]
fn ready_answers_503_when_the_database_is_unreachable() {
    let db = TestDb::migrated();
    let client = client(&db);
    db.refuse_connections();

    let response = client.get("/ready").dispatch();

    assert_eq!(response.status(), Status::ServiceUnavailable);
    let body: Value = response.into_json().unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("database"),
        "{body}"
    );
}
