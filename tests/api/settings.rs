//! Invalid settings refuse the start, in one line naming the key and the value, before anything
//! is migrated; the same keys with valid values start.

use crate::helpers::{TestDb, applied_versions, client_with, figment};
use crate::process::{Ran, Service, binary, free_port, migrate};

#[test]
fn ignition_refuses_an_invalid_value_of_any_service_setting_and_accepts_a_valid_one() {
    let db = TestDb::empty();
    let cases: [(&str, serde_json::Value, serde_json::Value); 7] = [
        ("migrate_on_start", "sometimes".into(), false.into()),
        ("migration_lock_timeout", (-1).into(), 5.into()),
        ("database_wait", "soon".into(), 1.into()),
        ("shutdown_drain", 1.5.into(), 0.into()),
        ("access_log", "xml".into(), "json".into()),
        ("prepared_statements", "maybe".into(), "auto".into()),
        ("databases.students.min_idle", "all".into(), 2.into()),
    ];
    for (key, invalid, valid) in cases {
        let rocket = students_api::build(figment(&db).merge((key, invalid.clone())));
        let ignition = rocket::execute(rocket.ignite());
        let err = ignition.expect_err(&format!("{key} = {invalid} was accepted"));
        assert!(
            matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
            "{key}"
        );

        // The negative control: the same key, set right, starts.
        drop(client_with(figment(&db).merge((key, valid))));
    }
}

#[test]
fn the_binary_refuses_an_invalid_setting_in_one_line_before_migrating() {
    let db = TestDb::empty();

    let ran = Ran::of(
        binary(db.url())
            .env("ROCKET_PORT", free_port().to_string())
            .env("ROCKET_MIGRATION_LOCK_TIMEOUT", "soon"),
    );

    assert_eq!(ran.status.code(), Some(1), "{}", ran.text());
    assert_eq!(
        ran.text().trim(),
        "error: invalid setting migration_lock_timeout: invalid type: found string \"soon\", \
         expected u64 (from ROCKET_MIGRATION_LOCK_TIMEOUT)"
    );
    assert!(applied_versions(&mut db.connect()).is_empty());

    // The subcommands read the settings the same way.
    let ran = Ran::of(
        binary(db.url())
            .args(["migrate", "status"])
            .env("ROCKET_DATABASES", "{students={pool_size=0}}"),
    );
    assert_eq!(ran.status.code(), Some(1), "{}", ran.text());
    assert_eq!(
        ran.stderr.trim(),
        "error: invalid setting databases.students.pool_size: 0; it must be at least 1"
    );
}

#[test]
fn the_binary_starts_with_the_same_settings_set_right() {
    let db = TestDb::empty();
    let mut service = Service::start_with(
        db.url(),
        &[
            ("ROCKET_MIGRATION_LOCK_TIMEOUT", "5"),
            ("ROCKET_DATABASES", "{students={pool_size=2,min_idle=2}}"),
        ],
    );

    let (status, body) = service.wait_until_serving("/ready").unwrap();

    assert_eq!(status, 200, "{body}");
    service.stop();
    assert!(migrate(db.url(), &["status"]).status.success());
}
