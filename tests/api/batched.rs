//! Batched data migrations: `up.sql` changes one batch of rows, and runs again, each time in a
//! transaction of its own, until a run changes none; only that run records the migration, so a
//! migrator stopped at any point goes on where it stopped, with nothing lost or written twice.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use students_api::migrate::{
    ApplyTarget, Batch, Checksum, EmbeddedMigration, KeyRange, Migrations, Migrator, Order,
    PostDeploy, Waits, migrations,
};

use crate::helpers::{TestDb, applied_versions};

const ROWS: i64 = 5_000;

const CREATE_THING: EmbeddedMigration = EmbeddedMigration {
    name: "2020-01-01-000000-0000_create_thing",
    up: "CREATE TABLE thing (id int PRIMARY KEY, done int NOT NULL DEFAULT 0, xid bigint);\n\
         INSERT INTO thing (id) SELECT generate_series(1, 5000);",
    down: Some("DROP TABLE thing;"),
    run_in_transaction: true,
    post_deploy: false,
    batch: None,
};

/// Marks up to 700 rows done, recording the transaction that did: one batch.
const MARK_DONE: EmbeddedMigration = EmbeddedMigration {
    name: "2020-01-02-000000-0000_mark_done",
    up: "-- One batch: at most 700 rows not done yet.\n\
         UPDATE thing SET done = done + 1, xid = txid_current()\n\
         WHERE id IN (SELECT id FROM thing WHERE done = 0 ORDER BY id LIMIT 700);\n",
    down: Some("-- Nothing to undo: the rows keep their marks.\nSELECT 1;"),
    run_in_transaction: false,
    post_deploy: false,
    batch: Some(Batch {
        remaining_rows: Some("SELECT count(*) FROM thing WHERE done = 0"),
        key_range: None,
    }),
};

/// MARK_DONE by slices of the key: at most 700 ids a batch, up to the largest id at the start.
const MARK_DONE_BY_KEY: EmbeddedMigration = EmbeddedMigration {
    up: "-- One slice of the key, from fleet_migrations.batch_start up to batch_end.\n\
         UPDATE thing SET done = done + 1, xid = txid_current()\n\
         WHERE id >= current_setting('fleet_migrations.batch_start')::bigint\n\
         AND id < current_setting('fleet_migrations.batch_end')::bigint AND done = 0;\n",
    batch: Some(Batch {
        remaining_rows: None,
        key_range: Some(KeyRange {
            query: "SELECT min(id), max(id) FROM thing",
            batch_size: 700,
        }),
    }),
    ..MARK_DONE
};

fn set(batched: EmbeddedMigration) -> Migrations {
    migrations(Box::leak(vec![CREATE_THING, batched].into_boxed_slice()))
}

fn migrator(db: &TestDb, set: Migrations, waits: Waits) -> Migrator {
    Migrator::connect(db.url(), set, waits).unwrap()
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    undone: i64,
    #[diesel(sql_type = BigInt)]
    twice: i64,
    #[diesel(sql_type = BigInt)]
    transactions: i64,
}

fn counts(db: &TestDb) -> Counts {
    sql_query(
        "SELECT count(*) FILTER (WHERE done = 0) AS undone, \
                count(*) FILTER (WHERE done > 1) AS twice, \
                count(DISTINCT xid) AS transactions FROM thing",
    )
    .get_result(&mut db.connect())
    .unwrap()
}

/// A database with `thing` and its rows, the batched migration still pending.
fn with_thing() -> TestDb {
    let db = TestDb::empty();
    migrator(&db, set(MARK_DONE), Waits::default())
        .run(
            &ApplyTarget::Through(CREATE_THING.name.to_owned()),
            PostDeploy::Apply,
            Order::InOrder,
        )
        .unwrap();
    db
}

fn recorded(db: &TestDb, migration: &EmbeddedMigration) -> bool {
    applied_versions(&mut db.connect()).contains(&migration.version())
}

#[test]
fn a_batched_migration_runs_one_transaction_per_batch_until_none_is_left_then_is_recorded() {
    let db = TestDb::empty();

    let applied = migrator(&db, set(MARK_DONE), Waits::default())
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();

    assert_eq!(applied, [CREATE_THING.name, MARK_DONE.name]);
    let batches = (ROWS + 699) / 700;
    assert_eq!(
        counts(&db),
        Counts {
            undone: 0,
            twice: 0,
            transactions: batches
        }
    );
    assert!(recorded(&db, &MARK_DONE));
}

#[test]
fn a_batched_migration_stopped_midway_goes_on_where_it_stopped_with_nothing_written_twice() {
    let db = with_thing();
    // Slow enough between batches to be cut off in the middle.
    let slow = Waits {
        batch_pause: Duration::from_millis(150),
        ..Waits::default()
    };
    let mut first = migrator(&db, set(MARK_DONE), slow);
    let url = db.url().to_owned();
    let killer = std::thread::spawn(move || {
        let mut conn = crate::helpers::connect(&url);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Once three batches are in, the migrator's connections go, as in a crash.
        while Instant::now() < deadline {
            #[derive(QueryableByName)]
            struct Done {
                #[diesel(sql_type = BigInt)]
                rows: i64,
            }
            let done: Done = sql_query("SELECT count(*) AS rows FROM thing WHERE done > 0")
                .get_result(&mut conn)
                .unwrap();
            if done.rows >= 3 * 700 {
                sql_query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND backend_type = 'client backend' \
                       AND pid <> pg_backend_pid()",
                )
                .execute(&mut conn)
                .unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the batches never reached 2,100 rows");
    });

    let stopped = first.run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder);
    killer.join().unwrap();

    assert!(stopped.is_err(), "{stopped:?}");
    let midway = counts(&db);
    assert!(
        midway.undone > 0 && midway.undone < ROWS - 2_000,
        "{midway:?}"
    );
    assert!(!recorded(&db, &MARK_DONE), "recorded before the last batch");

    migrator(&db, set(MARK_DONE), Waits::default())
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();
    let after = counts(&db);
    assert_eq!((after.undone, after.twice), (0, 0), "{after:?}");
    assert!(recorded(&db, &MARK_DONE));
}

/// The diesel CLI runs a batched `up.sql` once, outside a transaction, and records it: one batch.
/// The next `migrate run` finds it applied without checksums and runs the batches left before it
/// records them.
#[test]
fn a_batched_migration_the_diesel_cli_applied_is_finished_by_the_next_migrate_run() {
    use diesel_migrations::MigrationHarness;
    let db = with_thing();
    // diesel's own harness, as `diesel migration run` applies it.
    db.connect().run_next_migration(set(MARK_DONE)).unwrap();
    assert_eq!(counts(&db).undone, ROWS - 700);
    assert!(recorded(&db, &MARK_DONE));

    let mut migrator = migrator(&db, set(MARK_DONE), Waits::default());
    migrator
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();

    let after = counts(&db);
    assert_eq!((after.undone, after.twice), (0, 0), "{after:?}");
    let status = migrator.status().unwrap();
    let row = (status.iter())
        .find(|row| row.version == MARK_DONE.version())
        .unwrap();
    assert_eq!(row.checksum, Checksum::Verified, "{row:?}");
}

#[test]
fn a_batch_that_runs_past_the_statement_timeout_fails_and_records_nothing() {
    let db = TestDb::empty();
    let slow_batch = EmbeddedMigration {
        up: "UPDATE thing SET done = done + 1 \
             WHERE id IN (SELECT id FROM thing WHERE done = 0 LIMIT 10) \
               AND (SELECT true FROM pg_sleep(3))",
        ..MARK_DONE
    };
    let waits = Waits {
        batch_statement: Duration::from_secs(1),
        ..Waits::default()
    };

    let started = Instant::now();
    let err = migrator(&db, set(slow_batch), waits)
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert_eq!(counts(&db).undone, ROWS);
    assert!(!recorded(&db, &MARK_DONE));
}

#[test]
fn a_batch_behind_a_locked_row_waits_briefly_and_is_retried_until_the_lock_goes() {
    let db = with_thing();
    // A request's transaction holding one row of the second batch for 2.5 s.
    let url = db.url().to_owned();
    let holder = std::thread::spawn(move || {
        let mut conn = crate::helpers::connect(&url);
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            sql_query("SELECT id FROM thing WHERE id = 1000 FOR UPDATE").execute(conn)?;
            std::thread::sleep(Duration::from_millis(2_500));
            Ok(())
        })
        .unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    migrator(&db, set(MARK_DONE), Waits::default())
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();
    holder.join().unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let after = counts(&db);
    assert_eq!((after.undone, after.twice), (0, 0), "{after:?}");
}

#[test]
fn migrate_sql_prints_a_batched_migration_as_a_loop_that_psql_runs_to_the_same_end() {
    for (batched, header) in [
        (MARK_DONE, "-- Batched: the statement runs again and again"),
        (
            MARK_DONE_BY_KEY,
            "-- Batched by key: the statement runs once per slice of 700 keys",
        ),
    ] {
        let db = TestDb::empty();
        let script = migrator(&db, set(batched.clone()), Waits::default())
            .apply_sql(&ApplyTarget::All)
            .unwrap();
        assert!(script.contains(header), "{script}");
        let file = std::env::temp_dir().join(format!("batched-{}.sql", std::process::id()));
        std::fs::write(&file, &script).unwrap();

        let psql = std::process::Command::new("psql")
            .args([
                "--no-psqlrc",
                "--quiet",
                "--set",
                "ON_ERROR_STOP=1",
                "--file",
            ])
            .arg(&file)
            .arg(db.url())
            .output()
            .expect("run psql");
        std::fs::remove_file(&file).unwrap();

        assert!(
            psql.status.success(),
            "{}",
            String::from_utf8_lossy(&psql.stderr)
        );
        let after = counts(&db);
        assert_eq!((after.undone, after.twice), (0, 0), "{after:?}");
        assert!(after.transactions >= 8, "{after:?}");
        assert!(recorded(&db, &batched));
    }
}

#[test]
fn a_batched_migration_by_key_runs_one_transaction_per_slice_and_is_recorded_with_the_last() {
    let db = TestDb::empty();
    let applied = migrator(&db, set(MARK_DONE_BY_KEY), Waits::default())
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap();
    assert_eq!(applied, [CREATE_THING.name, MARK_DONE_BY_KEY.name]);
    let slices = (ROWS + 699) / 700;
    assert_eq!(
        counts(&db),
        Counts {
            undone: 0,
            twice: 0,
            transactions: slices
        }
    );
    assert!(recorded(&db, &MARK_DONE_BY_KEY));
}
