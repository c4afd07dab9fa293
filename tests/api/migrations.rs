//! The schema is owned by the migrations in `migrations/`: the service applies them at ignition,
//! exactly once, and every one of them can be reverted exactly (in the spirit of pytest-alembic's
//! built-in tests: single head, upgrade, up/down consistency, stairway).

use diesel::prelude::*;
use rocket::http::Status;
use serde_json::{Value, json};
use students_api::migrate::{
    ApplyTarget, EmbeddedMigration, MIGRATIONS, MigrateError, Migrations, Migrator, Order,
    PostDeploy, RevertTarget, Waits, migrations,
};
use students_api::schema::student;
use students_api::settings::Settings;

use crate::helpers::{
    FILES, TestDb, applied_versions, client, client_with, figment, public_objects, revert_through,
    schema_dump, table_exists,
};

fn migrator(db: &TestDb, set: Migrations) -> Migrator {
    Migrator::connect(db.url(), set, Waits::default()).expect("connect and lock")
}

/// Up to and including the migration named `name`.
fn through(name: &str) -> ApplyTarget {
    ApplyTarget::Through(name.to_owned())
}

/// The migration folders on disk, sorted, read without trusting the embedded list under test.
fn folders_on_disk() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read migrations/")
        .map(|entry| entry.expect("read migrations/ entry").path())
        // migrations/README.md states the team's rules beside the folders.
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Versions as diesel derives them from folder names: the part before `_`, without dashes.
fn version_of(folder: &str) -> String {
    let (version, _) = folder.split_once('_').expect("folder is <version>_<name>");
    version.replace('-', "")
}

#[test]
fn migration_versions_are_unique_and_increasing_and_every_folder_has_up_and_down() {
    let folders = folders_on_disk();
    let versions: Vec<String> = folders.iter().map(|folder| version_of(folder)).collect();

    for pair in versions.windows(2) {
        assert!(
            pair[0] < pair[1],
            "versions out of order or repeated: {pair:?}"
        );
    }
    for folder in &folders {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder);
        for file in ["up.sql", "down.sql"] {
            let text = std::fs::read_to_string(path.join(file))
                .unwrap_or_else(|err| panic!("{folder}/{file}: {err}"));
            assert!(!text.trim().is_empty(), "{folder}/{file} is empty");
        }
    }
    let compiled: Vec<&str> = FILES.iter().map(|migration| migration.name).collect();
    assert_eq!(
        compiled, folders,
        "the binary embeds exactly the folders on disk"
    );
}

/// The newest migration written before the harness set each one's lock wait. It and those before
/// it keep their own `SET LOCAL lock_timeout = '5s'`: they are checksummed, so they stay as
/// applied.
const LAST_WITH_ITS_OWN_LOCK_TIMEOUT: &str = "2026-11-29-224556-0000_validate_student_email_check";

#[test]
fn migrations_leave_the_lock_wait_to_the_harness_except_those_applied_before_it_did() {
    for migration in FILES {
        let files = [
            ("up.sql", migration.up),
            ("down.sql", migration.down.unwrap_or("")),
        ];
        for (file, text) in files {
            let sets_it = text
                .lines()
                .any(|line| line.trim_start().starts_with("SET LOCAL lock_timeout"));
            if migration.name > LAST_WITH_ITS_OWN_LOCK_TIMEOUT {
                assert!(
                    !sets_it,
                    "{}/{file} sets its own lock_timeout, which would replace the short, retried \
                     wait the service gives it (migration_lock_wait): remove the line",
                    migration.name
                );
            } else if migration.run_in_transaction {
                assert!(
                    sets_it,
                    "{}/{file} lost its lock_timeout line",
                    migration.name
                );
            }
        }
    }
}

#[test]
fn only_the_concurrent_index_migrations_and_the_backfill_run_outside_a_transaction() {
    let outside: Vec<&str> = FILES
        .iter()
        .filter(|migration| !migration.run_in_transaction)
        .map(|migration| migration.name)
        .collect();
    assert_eq!(
        outside,
        [
            "2026-11-27-164550-0000_index_student_major",
            "2026-12-01-161530-0000_index_student_enrolled_on_missing",
            // Batched: each batch is a transaction of its own (docs/migrations.md, "Changing data in a big table").
            "2026-12-01-161531-0000_backfill_student_enrolled_on",
            "2026-12-01-161532-0000_drop_student_enrolled_on_missing_index",
        ]
    );
}

#[test]
fn ignition_applies_every_migration_to_an_empty_database_and_records_each_version() {
    let db = TestDb::empty();
    let _client = client(&db);

    let mut conn = db.connect();
    let expected: Vec<String> = folders_on_disk().iter().map(|f| version_of(f)).collect();
    assert_eq!(applied_versions(&mut conn), expected);
    assert!(table_exists(&mut conn, "student"));
}

#[test]
fn running_the_migrations_again_is_a_no_op() {
    let db = TestDb::migrated();
    let client = client(&db);
    let mut conn = db.connect();
    let before = applied_versions(&mut conn);

    let applied = migrator(&db, MIGRATIONS)
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .expect("migrate again");
    assert!(applied.is_empty(), "re-applied {applied:?}");
    // A second start over the same database must not seed twice either.
    let second = crate::helpers::client(&db);

    assert_eq!(applied_versions(&mut conn), before);
    for client in [&client, &second] {
        let students: Vec<Value> = client.get("/students").dispatch().into_json().unwrap();
        assert_eq!(students.len(), 5);
    }
}

#[test]
fn each_migration_up_then_down_restores_the_schema_exactly_and_can_go_up_again() {
    let db = TestDb::empty();
    let mut conn = db.connect();
    let mut migrator = migrator(&db, MIGRATIONS);

    for migration in FILES {
        let before = schema_dump(&mut conn);
        let up = through(migration.name);
        let applied = migrator
            .run(&up, PostDeploy::Apply, Order::InOrder)
            .expect("up");
        assert_eq!(
            applied,
            [migration.name],
            "up applies exactly this migration"
        );

        let reverted = migrator.revert(&RevertTarget::Last(1)).expect("down");
        assert_eq!(reverted, [migration.name]);
        let after = schema_dump(&mut conn);
        assert_eq!(
            after, before,
            "{}: down.sql does not undo up.sql",
            migration.name
        );

        migrator
            .run(&up, PostDeploy::Apply, Order::InOrder)
            .expect("up again");
    }
    assert_eq!(applied_versions(&mut conn).len(), FILES.len());
}

#[test]
fn reverting_every_migration_leaves_only_the_bookkeeping_tables() {
    let db = TestDb::migrated();
    let _client = client(&db);

    migrator(&db, MIGRATIONS)
        .revert(&RevertTarget::All)
        .expect("revert all");

    let mut conn = db.connect();
    assert_eq!(
        public_objects(&mut conn),
        ["__diesel_schema_migrations", "__migration_checksums"]
    );
    assert!(applied_versions(&mut conn).is_empty());
}

#[test]
fn reverting_back_through_the_seed_migration_leaves_the_student_table_empty() {
    let db = TestDb::migrated();
    let _client = client(&db);
    let mut conn = db.connect();

    revert_through(&mut conn, "_seed_student_data");

    assert!(table_exists(&mut conn, "student"));
    let count: i64 = student::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 0);
}

#[test]
fn reverting_the_seed_removes_only_the_seeded_students() {
    let db = TestDb::migrated();
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
fn an_empty_table_lists_as_an_empty_array() {
    let db = TestDb::migrated();
    let client = client(&db);
    diesel::delete(student::table)
        .execute(&mut db.connect())
        .unwrap();

    let response = client.get("/students").dispatch();

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_json::<Value>().unwrap(), json!([]));
}

#[test]
fn with_migrate_on_start_off_ignition_leaves_the_database_untouched() {
    let db = TestDb::empty();
    let _client = client_with(figment(&db).merge(("migrate_on_start", false)));

    let mut conn = db.connect();
    assert!(public_objects(&mut conn).is_empty());
}

/// A migration that fails after one that succeeds.
const BROKEN: Migrations = migrations(&[
    EmbeddedMigration {
        name: "2020-01-01-000000-0000_create_thing",
        up: include_str!("../broken_migrations/2020-01-01-000000-0000_create_thing/up.sql"),
        down: Some(include_str!(
            "../broken_migrations/2020-01-01-000000-0000_create_thing/down.sql"
        )),
        run_in_transaction: true,
        post_deploy: false,
        batch: None,
    },
    EmbeddedMigration {
        name: "2020-01-02-000000-0000_broken",
        up: include_str!("../broken_migrations/2020-01-02-000000-0000_broken/up.sql"),
        down: Some(include_str!(
            "../broken_migrations/2020-01-02-000000-0000_broken/down.sql"
        )),
        run_in_transaction: true,
        post_deploy: false,
        batch: None,
    },
]);

#[test]
fn a_failing_migration_is_named_and_leaves_the_database_at_the_version_before_it() {
    let db = TestDb::empty();
    let mut conn = db.connect();

    let err = (migrator(&db, BROKEN))
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap_err();

    assert!(matches!(err, MigrateError::Failed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("2020-01-02-000000-0000_broken"),
        "{message}"
    );
    assert!(message.contains("no_such_table"), "{message}");
    assert!(message.contains("rolled back whole"), "{message}");
    assert_eq!(applied_versions(&mut conn), ["202001010000000000"]);
    assert!(table_exists(&mut conn, "thing"));
    assert!(!table_exists(&mut conn, "half_done"));
}

#[test]
fn a_first_install_skipping_post_deploy_migrations_applies_those_a_needed_one_is_behind() {
    let db = TestDb::empty();

    let applied = migrator(&db, CONTRACT_THEN_EXPAND)
        .run(&ApplyTarget::All, PostDeploy::Skip, Order::InOrder)
        .unwrap();

    // Nothing served the empty database, so no replica needed the column the contract step
    // drops; the test above is the same run on a database a release already served.
    assert_eq!(applied.len(), 3, "{applied:?}");
    assert_eq!(applied_versions(&mut db.connect()).len(), 3);
}

/// A release's expand step behind an earlier release's contract step.
const CONTRACT_THEN_EXPAND: Migrations = migrations(&[
    EmbeddedMigration {
        name: "2020-01-01-000000-0000_create_thing",
        up: "CREATE TABLE thing (id int, legacy int);",
        down: Some("DROP TABLE thing;"),
        run_in_transaction: true,
        post_deploy: false,
        batch: None,
    },
    EmbeddedMigration {
        name: "2020-01-02-000000-0000_drop_legacy",
        up: "ALTER TABLE thing DROP COLUMN legacy;",
        down: Some("ALTER TABLE thing ADD COLUMN legacy int;"),
        run_in_transaction: true,
        post_deploy: true,
        batch: None,
    },
    EmbeddedMigration {
        name: "2020-01-03-000000-0000_add_label",
        up: "ALTER TABLE thing ADD COLUMN label text;",
        down: Some("ALTER TABLE thing DROP COLUMN label;"),
        run_in_transaction: true,
        post_deploy: false,
        batch: None,
    },
]);

#[test]
fn skipping_post_deploy_migrations_that_hold_back_a_needed_one_is_an_error_saying_what_to_run() {
    let db = TestDb::empty();
    let mut conn = db.connect();
    // A release already served this database.
    migrator(&db, CONTRACT_THEN_EXPAND)
        .run(
            &through("2020-01-01-000000-0000_create_thing"),
            PostDeploy::Apply,
            Order::InOrder,
        )
        .unwrap();

    let err = migrator(&db, CONTRACT_THEN_EXPAND)
        .run(&ApplyTarget::All, PostDeploy::Skip, Order::InOrder)
        .unwrap_err();

    assert!(
        matches!(err, MigrateError::PostDeployFirst { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("migration 2020-01-03-000000-0000_add_label, which this binary needs, comes after post-deploy migration 2020-01-02-000000-0000_drop_legacy still pending"), "{message}");
    assert!(
        message.contains("`students-api migrate run --to 2020-01-02-000000-0000_drop_legacy`"),
        "{message}"
    );
    // What could be applied was.
    assert_eq!(applied_versions(&mut conn), ["202001010000000000"]);

    // Once the contract step is applied, the same command applies the rest.
    let mut migrator = migrator(&db, CONTRACT_THEN_EXPAND);
    migrator
        .run(
            &through("2020-01-02-000000-0000_drop_legacy"),
            PostDeploy::Apply,
            Order::InOrder,
        )
        .unwrap();
    assert_eq!(
        migrator
            .run(&ApplyTarget::All, PostDeploy::Skip, Order::InOrder)
            .unwrap(),
        ["2020-01-03-000000-0000_add_label"]
    );
}

#[test]
fn a_failing_migration_stops_the_service_from_starting() {
    let db = TestDb::empty();
    let settings = Settings::from_figment(figment(&db)).unwrap();
    let rocket = rocket::build()
        .configure(figment(&db))
        .attach(students_api::startup::stage_with(settings, BROKEN));

    let ignition = rocket::execute(rocket.ignite());

    let err = ignition.expect_err("ignition must fail");
    assert!(matches!(
        err.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
    let mut conn = db.connect();
    assert!(!table_exists(&mut conn, "half_done"));
}
