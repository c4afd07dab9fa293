//! Migrating safely in production: replicas starting together migrate once, under an advisory
//! lock; an applied migration edited since, or missing from the binary, stops the start.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use students_api::migrate::{
    ApplyTarget, LOCK_KEY, MIGRATIONS, Migrator, Order, PostDeploy, Waits,
};

use crate::helpers::{FILES, TestDb, applied_versions, client};
use crate::process::{Ran, Service, binary, free_port, migrate};

/// Each recorded checksum's version, and whether it was adopted rather than recorded on apply.
fn recorded(conn: &mut PgConnection) -> Vec<(String, bool)> {
    let recorded = students_api::migrate::recorded(conn).expect("read __migration_checksums");
    recorded
        .into_iter()
        .map(|r| (r.version, r.adopted))
        .collect()
}

fn all_versions() -> Vec<String> {
    FILES.iter().map(|migration| migration.version()).collect()
}

#[test]
fn five_instances_started_at_once_on_an_empty_database_all_serve_and_each_migration_runs_once() {
    let db = TestDb::empty();

    let mut services: Vec<Service> = (0..5).map(|_| Service::start(db.url())).collect();
    for service in &mut services {
        let (status, body) = service.wait_until_serving("/ready").unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let logs: Vec<String> = services.into_iter().map(Service::stop).collect();

    for migration in FILES {
        let line = format!("applied migration {} in ", migration.name);
        let times: usize = logs.iter().map(|log| log.matches(&line).count()).sum();
        assert_eq!(times, 1, "{} was applied {times} times", migration.name);
    }
    for log in &logs {
        assert!(
            !log.contains("Error"),
            "an instance logged an error:\n{log}"
        );
    }
    let mut conn = db.connect();
    assert_eq!(applied_versions(&mut conn), all_versions());
    let expected: Vec<(String, bool)> = all_versions().into_iter().map(|v| (v, false)).collect();
    assert_eq!(recorded(&mut conn), expected);
}

/// Holds the migration lock, as a replica in the middle of migrating does.
fn hold_lock(db: &TestDb) -> PgConnection {
    let mut conn = db.connect();
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(LOCK_KEY)
        .execute(&mut conn)
        .unwrap();
    conn
}

#[test]
fn a_starting_instance_waits_for_the_lock_then_migrates_once_it_is_free() {
    let db = TestDb::empty();
    let holder = hold_lock(&db);

    let mut service = Service::start(db.url());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        crate::process::request(service.port, "GET", "/health").is_err(),
        "the service must not serve while another process migrates"
    );
    assert!(applied_versions(&mut db.connect()).is_empty());

    drop(holder);
    let (status, _) = service.wait_until_serving("/ready").unwrap();
    assert_eq!(status, 200);
    let log = service.stop();
    assert!(
        log.contains("another process holds the migration lock"),
        "{log}"
    );
}

#[test]
fn a_starting_instance_gives_up_with_a_clear_message_when_the_lock_stays_taken() {
    let db = TestDb::empty();
    let _holder = hold_lock(&db);

    let started = Instant::now();
    let ran = Ran::of(
        binary(db.url())
            .env("ROCKET_PORT", free_port().to_string())
            .env("ROCKET_MIGRATION_LOCK_TIMEOUT", "1"),
    );

    assert!(!ran.status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = ran.text();
    assert!(text.contains("held the migration lock for 1s"), "{text}");
    assert!(applied_versions(&mut db.connect()).is_empty());
}

#[test]
fn migrations_applied_before_checksums_were_kept_are_adopted_on_the_next_start() {
    let db = TestDb::empty();
    let mut conn = db.connect();
    // As the diesel CLI, or an older release of this service, would have applied them.
    conn.run_pending_migrations(MIGRATIONS).unwrap();

    let _client = client(&db);

    let expected: Vec<(String, bool)> = all_versions().into_iter().map(|v| (v, true)).collect();
    assert_eq!(recorded(&mut conn), expected);
    assert!(migrate(db.url(), &["verify"]).status.success());
}

#[test]
fn a_migration_re_applied_by_another_tool_is_adopted_again_not_reported_as_changed() {
    let db = TestDb::migrated();
    let _client = client(&db);
    let mut conn = db.connect();
    // `diesel migration redo`: a new application of the same files, with a new run_on.
    conn.revert_last_migration(MIGRATIONS).unwrap();
    conn.run_pending_migrations(MIGRATIONS).unwrap();

    let mut migrator = Migrator::connect(db.url(), MIGRATIONS, Waits::default()).unwrap();
    assert!(migrator.verify().unwrap().is_empty());
    assert!(
        migrator
            .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
            .unwrap()
            .is_empty()
    );
    drop(migrator);
    let last = recorded(&mut conn).pop().unwrap();
    assert_eq!(last, (FILES.last().unwrap().version(), true));
}

/// Starts the binary over `db`, asserts it exits with an error, and returns what it wrote.
fn start_expecting_refusal(db: &TestDb) -> String {
    let start = Ran::of(binary(db.url()).env("ROCKET_PORT", free_port().to_string()));
    assert!(!start.status.success(), "the service started");
    start.text()
}

#[test]
fn an_applied_migration_whose_files_changed_stops_the_start_and_fails_verify() {
    let db = TestDb::migrated();
    let _client = client(&db);
    let seed = FILES
        .iter()
        .find(|migration| migration.name.ends_with("_seed_student_data"))
        .unwrap();
    // What a checksum recorded before someone edited seed's up.sql looks like.
    diesel::sql_query("UPDATE __migration_checksums SET up_sha256 = 'edited' WHERE version = $1")
        .bind::<Text, _>(seed.version())
        .execute(&mut db.connect())
        .unwrap();

    let text = start_expecting_refusal(&db);
    assert!(
        text.contains(&format!("migration {} was applied on", seed.name)),
        "{text}"
    );
    assert!(text.contains("up.sql changed since"), "{text}");

    let verify = migrate(db.url(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(verify.text().contains(seed.name));

    let run = migrate(db.url(), &["run"]);
    assert!(!run.status.success(), "run refuses too");
}

#[test]
fn a_binary_older_than_the_database_names_the_newer_migration_and_what_to_do() {
    let db = TestDb::migrated();
    let _client = client(&db);
    // What a newer build leaves behind: diesel's row and its checksum row, with the folder name.
    let newer = "2999-12-31-000000_add_email";
    db.connect()
        .batch_execute(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000000');
             INSERT INTO __migration_checksums (version, up_sha256, down_sha256, run_on, name)
             SELECT version, 'u', 'd', run_on, '{newer}' FROM __diesel_schema_migrations
             WHERE version = '29991231000000';"
        ))
        .unwrap();
    let newest = FILES.last().unwrap().name;

    let text = start_expecting_refusal(&db);
    assert!(
        text.contains(&format!("migration {newer} was applied on")),
        "{text}"
    );
    assert!(text.contains("by a newer build"), "{text}");
    assert!(
        text.contains(&format!("students-api migrate revert --to {newest}")),
        "{text}"
    );

    let verify = migrate(db.url(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(verify.text().contains(newer));

    let status = migrate(db.url(), &["status"]);
    assert_eq!(status.status.code(), Some(1), "status shows a problem");
    let text = status.text();
    let line = text.lines().find(|line| line.starts_with(newer));
    assert!(
        line.is_some_and(
            |line| line.contains(" unknown ") && line.ends_with("MISSING from this binary")
        ),
        "{text}"
    );
}

#[test]
fn an_applied_migration_whose_folder_is_gone_says_so_by_version() {
    let db = TestDb::migrated();
    let _client = client(&db);
    // Between two migrations of the binary, and applied by a tool that recorded no name.
    let first = FILES[0].version();
    let between = format!("{}1", &first[..first.len() - 1]);
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
        .bind::<Text, _>(&between)
        .execute(&mut db.connect())
        .unwrap();

    let text = start_expecting_refusal(&db);
    assert!(
        text.contains(&format!("migration {between} was applied on")),
        "{text}"
    );
    assert!(text.contains("its folder was deleted"), "{text}");

    let verify = migrate(db.url(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(verify.text().contains(&between));
}
