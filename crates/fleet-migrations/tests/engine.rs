//! The engine on its own, against real PostgreSQL (the server `DATABASE_URL` names; the
//! service's `scripts/test.sh` starts one): what a service passes it (its lock key, its command's
//! name) is what it uses, and its guarantees hold for migrations that are not the service's.
//! Each test creates a database of its own and drops it when it ends.

mod common;

use common::{Database, connect, count};

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use diesel_fleet_migrations::{
    ApplyTarget, Batch, EmbeddedMigration, KeyRange, MigrateError, Migrations, Migrator, Order,
    PostDeploy, RevertTarget, SchemaColumn, Unready, Waits, readiness,
};

const KEY: i64 = 4242;
const PROGRAM: &str = "shop-api";

const CREATE_ITEM: EmbeddedMigration = migration(
    "2030-01-01-000000-0000_create_item",
    "CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL);",
    "DROP TABLE item;",
);
const ADD_PRICE: EmbeddedMigration = migration(
    "2030-01-02-000000-0000_add_item_price",
    "ALTER TABLE item ADD COLUMN price integer;",
    "ALTER TABLE item DROP COLUMN price;",
);
const ADD_NOTE: EmbeddedMigration = migration(
    "2030-01-03-000000-0000_add_item_note",
    "ALTER TABLE item ADD COLUMN note text;",
    "ALTER TABLE item DROP COLUMN note;",
);

const SCHEMA: &[SchemaColumn] = &[
    column("id", "Int4", false),
    column("name", "Text", false),
    column("price", "Int4", true),
];

const fn migration(name: &'static str, up: &'static str, down: &'static str) -> EmbeddedMigration {
    EmbeddedMigration {
        name,
        up,
        down: Some(down),
        run_in_transaction: true,
        post_deploy: false,
        batch: None,
    }
}

const fn column(column: &'static str, sql_type: &'static str, nullable: bool) -> SchemaColumn {
    SchemaColumn {
        table: "item",
        column,
        sql_type,
        nullable,
    }
}

fn set(list: &'static [EmbeddedMigration]) -> Migrations {
    Migrations::new(list, SCHEMA, KEY, PROGRAM)
}

fn run(migrator: &mut Migrator) -> Result<Vec<&'static str>, MigrateError> {
    migrator.run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
}

#[test]
fn a_second_migrator_waits_for_the_lock_key_it_was_given_and_names_it_when_it_gives_up() {
    let db = Database::new();
    let waits = Waits {
        migration_lock: Duration::from_millis(300),
        ..Waits::default()
    };
    let holder = db.migrator(set(&[CREATE_ITEM]), waits).unwrap();
    let mut conn = connect(&db.url);
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = BigInt)]
        held: i64,
    }
    let Held { held } = sql_query(
        "SELECT count(*) AS held FROM pg_locks \
         WHERE locktype = 'advisory' AND objid = $1 AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind::<BigInt, _>(KEY)
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(held, 1, "the lock taken is not the key passed");

    let err = db.migrator(set(&[CREATE_ITEM]), waits).err().unwrap();
    assert!(
        matches!(err, MigrateError::LockTimeout { key: KEY, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("advisory lock 4242"), "{err}");

    // The control: another key does not wait for this one.
    let other = Migrations::new(&[CREATE_ITEM], SCHEMA, KEY + 1, PROGRAM);
    assert!(db.migrator(other, waits).is_ok());
    drop(holder);
    assert!(db.migrator(set(&[CREATE_ITEM]), waits).is_ok());
}

#[test]
fn an_applied_migration_edited_since_stops_the_next_run_and_a_late_one_is_refused_naming_the_command()
 {
    let db = Database::new();
    let mut migrator = db
        .migrator(set(&[CREATE_ITEM, ADD_NOTE]), Waits::default())
        .unwrap();
    assert_eq!(
        run(&mut migrator).unwrap(),
        [
            "2030-01-01-000000-0000_create_item",
            "2030-01-03-000000-0000_add_item_note"
        ]
    );
    drop(migrator);

    // ADD_PRICE sorts before ADD_NOTE, which is applied: a branch merged late.
    let mut migrator = db
        .migrator(set(&[CREATE_ITEM, ADD_PRICE, ADD_NOTE]), Waits::default())
        .unwrap();
    let err = run(&mut migrator).unwrap_err();
    assert!(matches!(err, MigrateError::OutOfOrder(_)), "{err}");
    assert!(
        err.to_string()
            .contains("`shop-api migrate run --allow-out-of-order`"),
        "{err}"
    );
    let applied = migrator
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::AllowOutOfOrder)
        .unwrap();
    assert_eq!(applied, ["2030-01-02-000000-0000_add_item_price"]);
    drop(migrator);

    static EDITED: [EmbeddedMigration; 3] = [
        CREATE_ITEM,
        EmbeddedMigration {
            up: "ALTER TABLE item ADD COLUMN price bigint;",
            ..ADD_PRICE
        },
        ADD_NOTE,
    ];
    let mut migrator = db.migrator(set(&EDITED), Waits::default()).unwrap();
    let err = run(&mut migrator).unwrap_err();
    assert!(matches!(err, MigrateError::Verification(_)), "{err}");
    assert!(err.to_string().contains("up.sql changed"), "{err}");
}

#[test]
fn readiness_compares_the_live_schema_with_the_columns_passed_and_revert_undoes_each_step() {
    let db = Database::new();
    let all = set(&[CREATE_ITEM, ADD_PRICE]);
    let mut migrator = db.migrator(all, Waits::default()).unwrap();
    assert_eq!(
        migrator.readiness().unwrap(),
        Some(Unready::Pending(vec![
            "2030-01-01-000000-0000_create_item",
            "2030-01-02-000000-0000_add_item_price"
        ]))
    );
    run(&mut migrator).unwrap();
    assert_eq!(migrator.readiness().unwrap(), None);

    let mut conn = connect(&db.url);
    sql_query("ALTER TABLE item ALTER COLUMN name DROP NOT NULL")
        .execute(&mut conn)
        .unwrap();
    match readiness(&mut conn, all).unwrap() {
        Some(Unready::Drift(drift)) => assert_eq!(drift.len(), 1, "{drift:?}"),
        other => panic!("a column made nullable by hand is drift: {other:?}"),
    }

    let reverted = migrator.revert(&RevertTarget::All).unwrap();
    assert_eq!(
        reverted,
        [
            "2030-01-02-000000-0000_add_item_price",
            "2030-01-01-000000-0000_create_item"
        ]
    );
    #[derive(QueryableByName)]
    struct Tables {
        #[diesel(sql_type = BigInt)]
        tables: i64,
    }
    let Tables { tables } = sql_query(
        "SELECT count(*) AS tables FROM pg_tables WHERE schemaname = 'public' AND tablename = 'item'",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn a_batched_migration_runs_batch_after_batch_and_a_post_deploy_one_waits_to_be_asked_for() {
    const SEED: EmbeddedMigration = migration(
        "2030-01-02-100000-0000_seed_item",
        "INSERT INTO item (name) SELECT 'item ' || n FROM generate_series(1, 25) AS n;",
        "DELETE FROM item WHERE id = ANY (ARRAY(SELECT id FROM item LIMIT 25));",
    );
    const BACKFILL: EmbeddedMigration = EmbeddedMigration {
        run_in_transaction: false,
        post_deploy: true,
        batch: Some(Batch {
            remaining_rows: Some("SELECT count(*) FROM item WHERE price IS NULL"),
            key_range: None,
        }),
        ..migration(
            "2030-01-02-200000-0000_backfill_item_price",
            "UPDATE item SET price = 0 \
             WHERE id = ANY (ARRAY(SELECT id FROM item WHERE price IS NULL ORDER BY id LIMIT 10));",
            "SELECT 1;",
        )
    };
    const CHECK: EmbeddedMigration = EmbeddedMigration {
        post_deploy: true,
        ..migration(
            "2030-01-02-300000-0000_check_item_price",
            "ALTER TABLE item ADD CONSTRAINT price_set CHECK (price IS NOT NULL);",
            "ALTER TABLE item DROP CONSTRAINT price_set;",
        )
    };
    static LIST: [EmbeddedMigration; 5] = [CREATE_ITEM, ADD_PRICE, SEED, BACKFILL, CHECK];
    let db = Database::new();
    let mut migrator = db.migrator(set(&LIST), Waits::default()).unwrap();

    // Before a rollout: the expand steps only, and the binary that ships the rest is ready.
    let applied = migrator
        .run(&ApplyTarget::All, PostDeploy::Skip, Order::InOrder)
        .unwrap();
    assert_eq!(applied, [CREATE_ITEM.name, ADD_PRICE.name, SEED.name]);
    assert_eq!(migrator.readiness().unwrap(), None);
    let mut conn = connect(&db.url);
    let unpriced = "SELECT count(*) AS count FROM item WHERE price IS NULL";
    assert_eq!(count(&mut conn, unpriced), 25);

    // After it: three batches of at most ten rows, then the check that needs all of them.
    assert_eq!(run(&mut migrator).unwrap(), [BACKFILL.name, CHECK.name]);
    assert_eq!(count(&mut conn, unpriced), 0);
    let constraints = "SELECT count(*) AS count FROM pg_constraint WHERE conname = 'price_set'";
    assert_eq!(count(&mut conn, constraints), 1);
    assert_eq!(run(&mut migrator).unwrap(), Vec::<&str>::new());
}

#[test]
fn a_migration_behind_a_held_table_lock_retries_within_its_budget_and_then_fails_naming_the_session()
 {
    let db = Database::new();
    let mut migrator = db.migrator(set(&[CREATE_ITEM]), Waits::default()).unwrap();
    run(&mut migrator).unwrap();
    drop(migrator);
    let short = Waits {
        table_lock: Duration::from_millis(200),
        budget: Duration::from_secs(1),
        ..Waits::default()
    };
    let add_price = set(&[CREATE_ITEM, ADD_PRICE]);

    // A reader that keeps its transaction open for longer than the whole budget.
    let mut reader = connect(&db.url);
    reader
        .batch_execute("BEGIN; LOCK TABLE item IN ACCESS SHARE MODE;")
        .unwrap();
    let started = std::time::Instant::now();
    let err = run(&mut db.migrator(add_price, short).unwrap()).unwrap_err();
    let took = started.elapsed();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            MigrateError::Failed {
                transactional: true,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("could not take its locks in"), "{message}");
    assert!(
        message.contains("LOCK TABLE item"),
        "the session in the way: {message}"
    );
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
    let mut conn = connect(&db.url);
    let price = "SELECT count(*) AS count FROM information_schema.columns \
                 WHERE table_name = 'item' AND column_name = 'price'";
    assert_eq!(count(&mut conn, price), 0, "rolled back whole");

    // The control: the same reader, done within the budget, lets the same migration through.
    let releasing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        reader.batch_execute("COMMIT").unwrap();
    });
    let applied = run(&mut db.migrator(add_price, short).unwrap()).unwrap();
    assert_eq!(applied, [ADD_PRICE.name]);
    releasing.join().unwrap();
    assert_eq!(count(&mut conn, price), 1);
}

/// Runs `backfill` (after CREATE_ITEM, ADD_PRICE and 5,000 unpriced items) while a writer keeps
/// adding unpriced items, 200 a statement, for at most `writing`. Whether the backfill ended
/// while the writer still wrote; one that did not is stopped.
fn backfill_under_writers(backfill: &'static [EmbeddedMigration], writing: Duration) -> bool {
    let db = Database::new();
    let setup = set(&[CREATE_ITEM, ADD_PRICE]);
    run(&mut db.migrator(setup, Waits::default()).unwrap()).unwrap();
    let mut writer = connect(&db.url);
    let insert = "INSERT INTO item (name) SELECT 'item ' || n FROM generate_series(1, 200) AS n";
    for _ in 0..25 {
        sql_query(insert).execute(&mut writer).unwrap();
    }
    let high_water = count(&mut writer, "SELECT max(id)::bigint AS count FROM item");

    let waits = Waits {
        batch_pause: Duration::from_millis(1),
        ..Waits::default()
    };
    let url = db.url.clone();
    let migrating = std::thread::spawn(move || -> Result<Vec<&str>, MigrateError> {
        let list: Vec<_> = [CREATE_ITEM, ADD_PRICE]
            .into_iter()
            .chain(backfill.iter().cloned())
            .collect();
        let list: &'static [EmbeddedMigration] = list.leak();
        run(&mut Migrator::connect(&url, set(list), waits)?)
    });
    let started = std::time::Instant::now();
    while !migrating.is_finished() && started.elapsed() < writing {
        sql_query(insert).execute(&mut writer).unwrap();
    }
    let ended_while_writing = migrating.is_finished();
    if !ended_while_writing {
        // Still chasing the writer's rows: end it, rather than wait for it to catch up.
        sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut writer)
        .unwrap();
        let _ = migrating.join();
        return false;
    }
    let applied = migrating.join().unwrap().unwrap();
    assert_eq!(applied, [backfill[0].name]);
    let unpriced =
        format!("SELECT count(*) AS count FROM item WHERE price IS NULL AND id <= {high_water}");
    assert_eq!(
        count(&mut writer, &unpriced),
        0,
        "every item there at the start is priced"
    );
    true
}

#[test]
fn a_backfill_by_key_range_ends_while_writers_keep_adding_rows_it_would_match() {
    static BY_KEY: [EmbeddedMigration; 1] = [EmbeddedMigration {
        run_in_transaction: false,
        batch: Some(Batch {
            remaining_rows: None,
            key_range: Some(KeyRange {
                query: "SELECT min(id), max(id) FROM item",
                batch_size: 100,
            }),
        }),
        ..migration(
            "2030-01-02-200000-0000_backfill_item_price",
            "UPDATE item SET price = 0 \
             WHERE id >= current_setting('fleet_migrations.batch_start')::bigint \
             AND id < current_setting('fleet_migrations.batch_end')::bigint AND price IS NULL;",
            "SELECT 1;",
        )
    }];
    let ended = backfill_under_writers(&BY_KEY, Duration::from_secs(60));
    assert!(
        ended,
        "the backfill by key range ran for as long as the writer wrote"
    );

    // The control: the same change, batched until a batch changes no row, chases the writer's
    // rows for as long as it writes.
    static UNTIL_NONE: [EmbeddedMigration; 1] = [EmbeddedMigration {
        run_in_transaction: false,
        batch: Some(Batch {
            remaining_rows: None,
            key_range: None,
        }),
        ..migration(
            "2030-01-02-200000-0000_backfill_item_price",
            "UPDATE item SET price = 0 \
             WHERE id = ANY (ARRAY(SELECT id FROM item WHERE price IS NULL ORDER BY id LIMIT 100));",
            "SELECT 1;",
        )
    }];
    let ended = backfill_under_writers(&UNTIL_NONE, Duration::from_secs(3));
    assert!(!ended, "the control ended while the writer still wrote");
}

#[test]
fn a_concurrent_index_build_that_failed_is_dropped_and_built_again_by_the_next_run() {
    const UNIQUE_NAME: EmbeddedMigration = EmbeddedMigration {
        run_in_transaction: false,
        ..migration(
            "2030-01-02-000000-0000_unique_item_name",
            "CREATE UNIQUE INDEX CONCURRENTLY item_name_key ON item (name);",
            "DROP INDEX CONCURRENTLY IF EXISTS item_name_key;",
        )
    };
    static LIST: [EmbeddedMigration; 2] = [CREATE_ITEM, UNIQUE_NAME];
    let db = Database::new();
    run(&mut db.migrator(set(&[CREATE_ITEM]), Waits::default()).unwrap()).unwrap();
    let mut conn = connect(&db.url);
    sql_query("INSERT INTO item (name) VALUES ('twice'), ('twice'), ('once')")
        .execute(&mut conn)
        .unwrap();

    // The duplicate fails the build, which leaves its index behind, INVALID.
    let err = run(&mut db.migrator(set(&LIST), Waits::default()).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::Failed {
                transactional: false,
                ..
            }
        ),
        "{err}"
    );
    let invalid = "SELECT count(*) AS count FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                   WHERE c.relname = 'item_name_key' AND NOT i.indisvalid";
    assert_eq!(count(&mut conn, invalid), 1);

    sql_query("DELETE FROM item WHERE ctid = (SELECT max(ctid) FROM item WHERE name = 'twice')")
        .execute(&mut conn)
        .unwrap();
    // The control: the same statement run again as it stands fails on the index left behind.
    let again = conn.batch_execute(UNIQUE_NAME.up).unwrap_err().to_string();
    assert!(again.contains("already exists"), "{again}");

    let applied = run(&mut db.migrator(set(&LIST), Waits::default()).unwrap()).unwrap();
    assert_eq!(applied, [UNIQUE_NAME.name]);
    assert_eq!(count(&mut conn, invalid), 0);
    let valid = invalid.replace("NOT i.indisvalid", "i.indisvalid");
    assert_eq!(count(&mut conn, &valid), 1);
    let err = sql_query("INSERT INTO item (name) VALUES ('once')")
        .execute(&mut conn)
        .unwrap_err();
    assert!(err.to_string().contains("item_name_key"), "{err}");
}
