//! `students-api migrate ...`: inspecting and steering migrations from the shipped binary.

use diesel::connection::SimpleConnection;

use students_api::migrate::{ApplyTarget, Migrator, Order, PostDeploy, Waits, migrations};

use crate::helpers::{FILES, TestDb, applied_versions, public_objects, schema_dump};
use crate::process::migrate;

fn versions(range: std::ops::Range<usize>) -> Vec<String> {
    FILES[range]
        .iter()
        .map(|migration| migration.version())
        .collect()
}

/// Index of the migration whose folder name ends with `suffix`.
fn index_of(suffix: &str) -> usize {
    FILES
        .iter()
        .position(|migration| migration.name.ends_with(suffix))
        .unwrap()
}

#[test]
fn status_lists_every_migration_as_pending_then_as_applied_with_a_verified_checksum() {
    let db = TestDb::empty();

    let before = migrate(db.url(), &["status"]);
    assert!(before.status.success(), "{}", before.stderr);
    let text = &before.stdout;
    for migration in FILES {
        let line = text.lines().find(|line| line.starts_with(migration.name));
        assert!(line.is_some_and(|line| line.contains("pending")), "{text}");
    }
    assert!(
        public_objects(&mut db.connect()).is_empty(),
        "status writes nothing"
    );

    assert!(migrate(db.url(), &["run"]).status.success());
    let after = migrate(db.url(), &["status"]).stdout;
    for migration in FILES {
        let line = after
            .lines()
            .find(|line| line.starts_with(migration.name))
            .unwrap();
        assert!(line.contains("applied") && line.ends_with("ok"), "{line}");
    }
}

#[test]
fn run_to_applies_up_to_and_including_that_version_only() {
    let db = TestDb::empty();
    let seed = index_of("_seed_student_data");

    let output = migrate(db.url(), &["run", "--to", FILES[seed].name]);

    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(applied_versions(&mut db.connect()), versions(0..seed + 1));
    let printed = &output.stdout;
    let printed: Vec<&str> = printed.lines().collect();
    assert_eq!(printed.len(), seed + 1);
    assert!(printed.iter().all(|line| line.starts_with("applied ")));

    // Any of the three spellings of a version works.
    let timestamps = index_of("_add_student_timestamps");
    let prefix = FILES[timestamps].name.split_once('_').unwrap().0;
    assert!(migrate(db.url(), &["run", "--to", prefix]).status.success());
    assert!(
        migrate(db.url(), &["run", "--to", &FILES[timestamps + 1].version()])
            .status
            .success()
    );
    assert_eq!(
        applied_versions(&mut db.connect()),
        versions(0..timestamps + 2)
    );
}

#[test]
fn revert_undoes_the_last_one_by_default_n_of_them_down_to_a_version_or_all() {
    let db = TestDb::migrated();
    let total = FILES.len();
    assert!(migrate(db.url(), &["run"]).status.success());

    assert!(migrate(db.url(), &["revert"]).status.success());
    assert_eq!(applied_versions(&mut db.connect()), versions(0..total - 1));

    assert!(migrate(db.url(), &["revert", "-n", "2"]).status.success());
    assert_eq!(applied_versions(&mut db.connect()), versions(0..total - 3));

    let create = index_of("_create_student");
    let output = migrate(db.url(), &["revert", "--to", FILES[create].name]);
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(applied_versions(&mut db.connect()), versions(0..create + 1));

    assert!(migrate(db.url(), &["revert", "--all"]).status.success());
    assert!(applied_versions(&mut db.connect()).is_empty());
    assert_eq!(
        public_objects(&mut db.connect()),
        ["__diesel_schema_migrations", "__migration_checksums"]
    );
}

#[test]
fn redo_reverts_and_reapplies_leaving_the_same_schema() {
    let db = TestDb::migrated();
    assert!(migrate(db.url(), &["run"]).status.success());
    let before = schema_dump(&mut db.connect());

    let output = migrate(db.url(), &["redo", "-n", "3"]);

    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(output.stdout.lines().count(), 3);
    assert_eq!(schema_dump(&mut db.connect()), before);
    assert!(migrate(db.url(), &["redo", "--all"]).status.success());
    assert_eq!(applied_versions(&mut db.connect()).len(), FILES.len());
}

#[test]
fn sql_prints_what_run_would_execute_without_executing_it_and_the_script_works() {
    let db = TestDb::empty();
    let validate = index_of("_validate_student_checks");

    let output = migrate(db.url(), &["sql", "--to", FILES[validate].name]);

    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        public_objects(&mut db.connect()).is_empty(),
        "sql runs nothing"
    );
    let script = &output.stdout;
    for migration in &FILES[..=validate] {
        assert!(
            script.contains(&format!("-- Apply {}\n", migration.name)),
            "{script}"
        );
    }
    assert!(!script.contains("_index_student_major"));
    // Run by another tool, the script leaves what `run --to` would: applied, checksums recorded.
    db.connect().batch_execute(script).expect("the script runs");
    assert_eq!(
        applied_versions(&mut db.connect()),
        versions(0..validate + 1)
    );
    assert!(migrate(db.url(), &["verify"]).status.success());
}

#[test]
fn sql_down_prints_what_revert_would_execute() {
    let db = TestDb::migrated();
    assert!(migrate(db.url(), &["run"]).status.success());
    let seed = index_of("_seed_student_data");

    let output = migrate(db.url(), &["sql", "--down", "--to", FILES[seed].name]);

    let script = &output.stdout;
    for migration in &FILES[seed + 1..] {
        assert!(
            script.contains(&format!("-- Revert {}\n", migration.name)),
            "{script}"
        );
        assert!(script.contains(migration.down.unwrap().trim()), "{script}");
    }
    assert!(!script.contains(&format!("-- Revert {}\n", FILES[seed].name)));
    assert!(
        script.contains("outside a transaction"),
        "the index migration says so"
    );
    assert_eq!(applied_versions(&mut db.connect()).len(), FILES.len());
}

#[test]
fn verify_succeeds_when_the_database_matches_the_binary() {
    let db = TestDb::migrated();
    assert!(migrate(db.url(), &["run"]).status.success());

    let output = migrate(db.url(), &["verify"]);

    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.starts_with("ok"));
}

#[test]
fn an_unknown_version_is_an_error_that_changes_nothing() {
    let db = TestDb::empty();

    let output = migrate(db.url(), &["run", "--to", "1999"]);

    assert!(!output.status.success());
    assert!(
        output
            .stderr
            .contains("no migration \"1999\" in this binary"),
        "{}",
        output.stderr
    );
    assert!(applied_versions(&mut db.connect()).is_empty());
}

#[test]
fn conflicting_revert_targets_are_refused_before_touching_the_database() {
    let output = migrate(
        "postgres://unused@127.0.0.1:1/none",
        &["revert", "--all", "-n", "2"],
    );

    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    assert!(
        output.stderr.contains("cannot be used with"),
        "{}",
        output.stderr
    );
}

#[test]
fn run_skip_post_deploy_stops_before_the_first_post_deploy_migration() {
    let db = TestDb::empty();
    // A database the release before the newest migration served: every later migration pending.
    let served = FILES.len() - 1;
    assert!(
        migrate(db.url(), &["run", "--to", FILES[served - 1].name])
            .status
            .success()
    );
    // And the newest migration a post-deploy one, as a release's contract step is.
    let last = FILES.len() - 1;
    let with_contract_step = |post_deploy: bool| {
        let mut set = FILES.to_vec();
        set[last].post_deploy = post_deploy;
        migrations(Box::leak(set.into_boxed_slice()))
    };
    let mut migrator =
        Migrator::connect(db.url(), with_contract_step(true), Waits::default()).unwrap();

    let applied = migrator
        .run(&ApplyTarget::All, PostDeploy::Skip, Order::InOrder)
        .unwrap();

    assert!(applied.is_empty(), "{applied:?}");
    assert_eq!(applied_versions(&mut db.connect()), versions(0..served));
    let status = migrator.status().unwrap();
    assert!(status[last].applied_on.is_none() && status[last].post_deploy);

    // Then the rest, as after a rollout.
    migrator
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();
    assert_eq!(
        applied_versions(&mut db.connect()),
        versions(0..FILES.len())
    );
}

#[test]
fn run_skip_post_deploy_on_an_empty_database_applies_every_migration_a_binary_needs() {
    let db = TestDb::empty();
    let last_needed = FILES
        .iter()
        .rposition(|migration| !migration.post_deploy)
        .unwrap();

    let output = migrate(db.url(), &["run", "--skip-post-deploy"]);

    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(
        applied_versions(&mut db.connect()),
        versions(0..last_needed + 1)
    );
    let status = migrate(db.url(), &["status"]).stdout;
    for migration in &FILES[last_needed + 1..] {
        let line = (status.lines())
            .find(|line| line.starts_with(migration.name))
            .unwrap();
        assert!(
            line.contains("(post-deploy)") && line.contains("pending"),
            "{line}"
        );
    }
}
