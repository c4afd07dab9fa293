//! `migrate new`: each chain, written into a folder from the live schema, then applied by the
//! engine while writers of the old shape and of the new one write together; the rows stay in
//! step, the contract takes the old shape away, and reverting puts it back.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_query;
use diesel_fleet_migrations::generate::{self, GenerateError, NewArgs, Operation};
use diesel_fleet_migrations::rules::contract_steps;
use diesel_fleet_migrations::{
    ApplyTarget, Migrations, Migrator, Order, PostDeploy, RevertTarget, Waits, read_dir,
};

use common::{Database, connect, count};

const FIXTURE: &str = "2030-01-01-000000-0000_create_person";

/// A migrations folder of its own with the `person` table as its first migration, applied.
struct Scratch {
    db: Database,
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("generate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fixture = dir.join(FIXTURE);
        std::fs::create_dir_all(&fixture).unwrap();
        std::fs::write(
            fixture.join("up.sql"),
            "CREATE TABLE person (\n\
                 id serial PRIMARY KEY,\n\
                 name text NOT NULL CONSTRAINT person_name_check CHECK (char_length(name) <= 50),\n\
                 born date,\n\
                 city text DEFAULT 'Paris'\n\
             );\n\
             CREATE INDEX person_name_idx ON person (name, id);\n\
             INSERT INTO person (name, born)\n\
             SELECT 'person ' || n, date '2000-01-01' + n FROM generate_series(1, 3000) AS n;\n",
        )
        .unwrap();
        std::fs::write(fixture.join("down.sql"), "DROP TABLE person;\n").unwrap();
        let scratch = Scratch {
            db: Database::new(),
            dir,
        };
        scratch.run(PostDeploy::Apply);
        scratch
    }

    fn set(&self) -> Migrations {
        Migrations::new(read_dir(&self.dir).unwrap(), &[], 77, "people-api")
    }

    fn migrator(&self) -> Migrator {
        let waits = Waits {
            batch_pause: Duration::from_millis(2),
            ..Waits::default()
        };
        Migrator::connect(&self.db.url, self.set(), waits).unwrap()
    }

    fn run(&self, post_deploy: PostDeploy) -> Vec<&'static str> {
        (self.migrator())
            .run(&ApplyTarget::All, post_deploy, Order::InOrder)
            .unwrap()
    }

    fn generate(&self, operation: Operation) -> Result<Vec<PathBuf>, GenerateError> {
        let args = NewArgs {
            operation,
            dir: self.dir.clone(),
            batch_size: 500,
        };
        let (written, _) = generate::new(&mut connect(&self.db.url), &args, "test")?;
        let set = self.set();
        let problems = contract_steps(&set);
        assert!(problems.is_empty(), "{problems:?}");
        Ok(written)
    }

    fn count(&self, query: &str) -> i64 {
        count(&mut connect(&self.db.url), query)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `write` again and again on a connection of its own until stopped (or 60 s, or 100,000
/// times), counting the writes.
struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl Writer {
    fn start(url: &str, write: impl Fn(&mut PgConnection, u64) + Send + 'static) -> Writer {
        let (stop, writes) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let mut conn = connect(url);
        let (stopping, counting) = (stop.clone(), writes.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            for n in 0..100_000 {
                if stopping.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                write(&mut conn, n);
                counting.fetch_add(1, Ordering::Relaxed);
            }
        });
        Writer {
            stop,
            writes,
            thread,
        }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.writes.load(Ordering::Relaxed)
    }
}

fn execute(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

fn names(written: &[PathBuf]) -> Vec<String> {
    (written.iter())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The previous binary's writes: it knows only `name`.
fn old_writer(url: &str) -> Writer {
    Writer::start(url, |conn, n| {
        execute(
            conn,
            &format!("INSERT INTO person (name) VALUES ('old {n}')"),
        );
        execute(
            conn,
            &format!(
                "UPDATE person SET name = 'old update {n}' WHERE id = {}",
                1 + n % 3000
            ),
        );
    })
}

#[test]
fn a_renamed_column_stays_in_step_while_both_names_are_written_then_the_old_name_goes() {
    let scratch = Scratch::new("rename");
    let url = scratch.db.url.clone();
    let written = scratch
        .generate(Operation::RenameColumn {
            table: "person".into(),
            column: "name".into(),
            new_name: "full_name".into(),
        })
        .unwrap();
    let steps = names(&written);
    assert!(
        steps[0].ends_with("_rename_person_name_expand"),
        "{steps:?}"
    );
    assert!(
        steps
            .last()
            .unwrap()
            .ends_with("_rename_person_name_contract")
    );

    // Before the rollout, under the previous binary's writes.
    let old = old_writer(&url);
    let pre = scratch.run(PostDeploy::Skip);
    assert_eq!(pre.len(), 3, "expand, backfill and the index: {pre:?}");
    // Both binaries serve: the new one writes full_name only.
    let new = Writer::start(&url, |conn, n| {
        execute(
            conn,
            &format!("INSERT INTO person (full_name) VALUES ('new {n}')"),
        );
        execute(
            conn,
            &format!(
                "UPDATE person SET full_name = 'new update {n}' WHERE id = {}",
                1 + (n * 7) % 3000
            ),
        );
    });
    std::thread::sleep(Duration::from_millis(800));
    let (old_writes, new_writes) = (old.stop(), new.stop());
    assert!(
        old_writes > 0 && new_writes > 0,
        "{old_writes} {new_writes}"
    );
    let apart = "SELECT count(*) AS count FROM person WHERE full_name IS DISTINCT FROM name";
    assert_eq!(
        scratch.count(apart),
        0,
        "every row has one value under both names"
    );

    // The control: with the trigger off, a row the previous binary writes has no full_name.
    let mut conn = connect(&url);
    execute(
        &mut conn,
        "ALTER TABLE person DISABLE TRIGGER person_name_full_name_sync",
    );
    execute(&mut conn, "INSERT INTO person (name) VALUES ('unsynced')");
    assert_eq!(scratch.count(apart), 1);
    execute(
        &mut conn,
        "ALTER TABLE person ENABLE TRIGGER person_name_full_name_sync",
    );
    execute(
        &mut conn,
        "UPDATE person SET name = 'synced' WHERE name = 'unsynced'",
    );
    assert_eq!(scratch.count(apart), 0);

    // After the rollout, under the new binary's writes only.
    let new = Writer::start(&url, |conn, n| {
        execute(
            conn,
            &format!("INSERT INTO person (full_name) VALUES ('after {n}')"),
        );
    });
    let post = scratch.run(PostDeploy::Apply);
    new.stop();
    assert_eq!(
        post.len(),
        3,
        "the rules, their validation, the contract: {post:?}"
    );
    let columns = "SELECT count(*) AS count FROM information_schema.columns \
                   WHERE table_name = 'person' AND column_name = 'name'";
    assert_eq!(scratch.count(columns), 0);
    let not_null = "SELECT count(*) AS count FROM information_schema.columns \
                    WHERE table_name = 'person' AND column_name = 'full_name' AND is_nullable = 'NO'";
    assert_eq!(scratch.count(not_null), 1);
    let long = sql_query(format!(
        "INSERT INTO person (full_name) VALUES ('{}')",
        "x".repeat(51)
    ))
    .execute(&mut conn)
    .unwrap_err();
    assert!(
        long.to_string().contains("person_full_name_check"),
        "{long}"
    );
    let index = "SELECT count(*) AS count FROM pg_indexes WHERE indexname = 'person_full_name_idx'";
    assert_eq!(scratch.count(index), 1);

    // Reverting the chain puts name back, with every value.
    let rows = scratch.count("SELECT count(*) AS count FROM person");
    let reverted = (scratch.migrator())
        .revert(&RevertTarget::To(FIXTURE.into()))
        .unwrap();
    assert_eq!(reverted.len(), 6);
    assert_eq!(
        scratch.count("SELECT count(*) AS count FROM person WHERE name IS NOT NULL"),
        rows
    );
    assert_eq!(scratch.run(PostDeploy::Apply).len(), 6, "and applies again");
}

#[test]
fn a_changed_type_converts_each_way_while_both_types_are_written() {
    let scratch = Scratch::new("retype");
    let url = scratch.db.url.clone();
    scratch
        .generate(Operation::ChangeType {
            table: "person".into(),
            column: "born".into(),
            sql_type: "timestamptz".into(),
            new_name: "born_at".into(),
            using: "(born::timestamp AT TIME ZONE 'UTC')".into(),
            back: "(born_at AT TIME ZONE 'UTC')::date".into(),
        })
        .unwrap();
    let old = Writer::start(&url, |conn, n| {
        execute(
            conn,
            &format!(
                "INSERT INTO person (name, born) VALUES ('old {n}', date '1990-01-01' + {})",
                n % 1000
            ),
        );
    });
    scratch.run(PostDeploy::Skip);
    let new = Writer::start(&url, |conn, n| {
        execute(
            conn,
            &format!(
                "UPDATE person SET born_at = timestamptz '2010-06-01 00:00:00+00' + interval '{} days' \
                 WHERE id = {}",
                n % 500,
                1 + n % 3000
            ),
        );
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(old.stop() > 0 && new.stop() > 0);
    let apart = "SELECT count(*) AS count FROM person \
                 WHERE born_at IS DISTINCT FROM (born::timestamp AT TIME ZONE 'UTC') \
                    OR born IS DISTINCT FROM (born_at AT TIME ZONE 'UTC')::date";
    assert_eq!(scratch.count(apart), 0);
    scratch.run(PostDeploy::Apply);
    let born = "SELECT count(*) AS count FROM information_schema.columns \
                WHERE table_name = 'person' AND column_name = 'born'";
    assert_eq!(scratch.count(born), 0);
}

#[test]
fn a_not_null_column_is_filled_for_the_rows_there_and_those_the_previous_binary_inserts() {
    let scratch = Scratch::new("add-column");
    let url = scratch.db.url.clone();
    scratch
        .generate(Operation::AddColumn {
            table: "person".into(),
            column: "slug".into(),
            sql_type: "text".into(),
            default: None,
            not_null: true,
            backfill: Some("lower(replace(name, ' ', '-'))".into()),
        })
        .unwrap();
    let old = old_writer(&url);
    scratch.run(PostDeploy::Skip);
    std::thread::sleep(Duration::from_millis(300));
    old.stop();
    let empty = "SELECT count(*) AS count FROM person WHERE slug IS NULL";
    assert_eq!(scratch.count(empty), 0);
    scratch.run(PostDeploy::Apply);
    let missing = sql_query("INSERT INTO person (name) VALUES ('no slug')")
        .execute(&mut connect(&url))
        .unwrap_err();
    assert!(
        missing.to_string().contains("slug"),
        "NOT NULL, and the trigger gone: {missing}"
    );
}

#[test]
fn what_cannot_be_carried_over_or_read_is_refused_naming_it() {
    let scratch = Scratch::new("refused");
    let mut conn = connect(&scratch.db.url);
    execute(
        &mut conn,
        "CREATE TABLE pet (id serial PRIMARY KEY, owner_id int REFERENCES person (id))",
    );
    execute(&mut conn, "CREATE TABLE tag (label text)");
    let rename = |table: &str, column: &str| Operation::RenameColumn {
        table: table.into(),
        column: column.into(),
        new_name: "renamed".into(),
    };
    let err = scratch.generate(rename("pet", "owner_id")).unwrap_err();
    assert!(
        err.to_string().contains("foreign key pet_owner_id_fkey"),
        "{err}"
    );
    let err = scratch.generate(rename("person", "id")).unwrap_err();
    assert!(err.to_string().contains("primary key person_pkey"), "{err}");
    let err = scratch.generate(rename("tag", "label")).unwrap_err();
    assert!(matches!(err, GenerateError::NoKey { .. }), "{err}");
    let err = scratch.generate(rename("person", "Name")).unwrap_err();
    assert!(matches!(err, GenerateError::Identifier(_)), "{err}");

    // A chain written but not applied: the next one would follow a schema the database lacks.
    let written = scratch.generate(rename("person", "city")).unwrap();
    let err = scratch.generate(rename("person", "born")).unwrap_err();
    assert!(matches!(err, GenerateError::Pending(_)), "{err}");
    assert!(err.to_string().contains(&names(&written)[0]), "{err}");
    assert!(Path::new(&written[0]).join("metadata.toml").is_file());
}
