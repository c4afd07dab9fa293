//! A migration whose lock is held by a long transaction waits `migration_lock_wait` per attempt,
//! lets traffic through between attempts, names the session in its way, and lands once that
//! session ends; past `migration_lock_budget` it fails with nothing applied. Each case holds a real
//! conflicting lock in a real transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use students_api::migrate::{
    ApplyTarget, EmbeddedMigration, MigrateError, Migrations, Migrator, Order, PostDeploy, Waits,
    migrations,
};

use crate::helpers::{FILES, TestDb, applied_versions, revert_through};
use crate::process::{Service, migrate, request};

/// How long the blocking transaction holds its lock, as in the case measured on the previous
/// release: long enough for several 1 s waits.
const HOLD: Duration = Duration::from_secs(8);

/// The service's migrations and `extra` after them.
fn with_one_more(extra: EmbeddedMigration) -> Migrations {
    let mut all: Vec<EmbeddedMigration> = FILES.to_vec();
    all.push(extra);
    migrations(Box::leak(all.into_boxed_slice()))
}

/// A CHECK added as a migration written today: no lock_timeout of its own.
const NEW_WAY: EmbeddedMigration = EmbeddedMigration {
    name: "2099-01-01-000000-0000_check_id_positive",
    up: "ALTER TABLE student ADD CONSTRAINT student_id_positive CHECK (id > 0) NOT VALID;",
    down: Some("ALTER TABLE student DROP CONSTRAINT student_id_positive;"),
    run_in_transaction: true,
    post_deploy: false,
    batch: None,
};

/// The same change as the migrations before the harness set lock waits were written: the file's
/// own 5 s wait replaces the short one.
const OLD_WAY: EmbeddedMigration = EmbeddedMigration {
    up: "SET LOCAL lock_timeout = '5s';\n\
         ALTER TABLE student ADD CONSTRAINT student_id_positive CHECK (id > 0) NOT VALID;",
    ..NEW_WAY
};

const CONCURRENT_INDEX: EmbeddedMigration = EmbeddedMigration {
    name: "2099-01-01-000000-0000_index_student_last_name",
    up: "CREATE INDEX CONCURRENTLY student_last_name_idx ON student (last_name);",
    down: Some("DROP INDEX CONCURRENTLY IF EXISTS student_last_name_idx;"),
    run_in_transaction: false,
    post_deploy: false,
    batch: None,
};

/// Holds `lock` (SQL run inside a transaction) on `db` for `hold` in a thread; returns once the
/// lock is held, with the holder's pid and the thread, which commits and ends.
fn hold_lock(
    db: &TestDb,
    lock: &'static str,
    hold: Duration,
) -> (i32, std::thread::JoinHandle<()>) {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }
    let mut conn = db.connect();
    let (held, is_held) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let Pid { pid } = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(&mut conn)
            .unwrap();
        conn.batch_execute(&format!("BEGIN; {lock}")).unwrap();
        held.send(pid).unwrap();
        std::thread::sleep(hold);
        conn.batch_execute("COMMIT").unwrap();
    });
    (is_held.recv().expect("the lock is held"), holder)
}

const READS_STUDENT: &str = "SELECT count(*) FROM student";

/// Reads `/students` from `service` until `done`, at most 60 s; the slowest answer's time, and
/// every answer's status.
fn read_until(service: &Service, done: &AtomicBool) -> (Duration, Vec<u16>) {
    let (mut slowest, mut statuses) = (Duration::ZERO, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
        let sent = Instant::now();
        let (status, _, _) = request(service.port, "GET", "/students?limit=1").unwrap();
        slowest = slowest.max(sent.elapsed());
        statuses.push(status);
        std::thread::sleep(Duration::from_millis(20));
    }
    (slowest, statuses)
}

/// Applies `extra` through a Migrator while a transaction holds ACCESS SHARE on `student` for
/// [`HOLD`] and `/students` is read throughout; the outcome, how long it took, and the slowest
/// read.
fn migrate_while_read(
    extra: EmbeddedMigration,
    waits: Waits,
) -> (Result<Vec<&'static str>, MigrateError>, Duration, Duration) {
    let db = TestDb::migrated();
    let mut service = Service::start_with(db.url(), &[("ROCKET_LOG_LEVEL", "critical")]);
    service.wait_until_serving("/ready").unwrap();
    let set = with_one_more(extra);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_until(&service, &done));
        std::thread::sleep(Duration::from_millis(300));
        let (_, holder) = hold_lock(&db, READS_STUDENT, HOLD);
        let started = Instant::now();
        let outcome = Migrator::connect(db.url(), set, waits)
            .and_then(|mut m| m.run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder));
        let took = started.elapsed();
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        let (slowest, statuses) = reader.join().unwrap();
        holder.join().unwrap();
        assert!(statuses.len() > 20, "too few reads: {}", statuses.len());
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        (outcome, took, slowest)
    })
}

fn waits(table_lock: u64, budget: u64) -> Waits {
    Waits {
        table_lock: Duration::from_secs(table_lock),
        budget: Duration::from_secs(budget),
        ..Waits::default()
    }
}

#[test]
fn a_blocked_migration_lands_once_the_blocker_ends_and_reads_never_stall_past_the_wait() {
    let (outcome, took, slowest) = migrate_while_read(NEW_WAY, waits(1, 60));

    assert_eq!(outcome.unwrap(), [NEW_WAY.name]);
    assert!(took >= HOLD - Duration::from_secs(1), "landed in {took:?}");
    assert!(took < HOLD + Duration::from_secs(10), "landed in {took:?}");
    assert!(
        slowest <= Duration::from_millis(1500),
        "a read stalled {slowest:?}, over migration_lock_wait + 0.5 s"
    );
}

#[test]
fn negative_control_a_migration_with_its_own_5s_wait_stalls_reads_for_it() {
    let (outcome, _, slowest) = migrate_while_read(OLD_WAY, waits(1, 60));

    // It still lands, on a later attempt; but each of its waits holds traffic for 5 s.
    assert_eq!(outcome.unwrap(), [OLD_WAY.name]);
    assert!(
        slowest > Duration::from_millis(1500),
        "reads were not stalled ({slowest:?}): the check above could not tell"
    );
}

/// Applies `extra` while a transaction holds `lock` for [`HOLD`]; the holder's pid, the error the
/// migration failed with, and how long it tried, once the database is back to what it was.
fn fail_behind(
    lock: &'static str,
    extra: EmbeddedMigration,
    waits: Waits,
) -> (i32, MigrateError, Duration) {
    let db = TestDb::migrated();
    let before = applied_versions(&mut db.connect());
    let (pid, holder) = hold_lock(&db, lock, HOLD);

    let started = Instant::now();
    let err = Migrator::connect(db.url(), with_one_more(extra), waits)
        .unwrap()
        .run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
        .unwrap_err();
    let took = started.elapsed();
    holder.join().unwrap();
    assert_eq!(
        applied_versions(&mut db.connect()),
        before,
        "something was applied"
    );
    (pid, err, took)
}

#[test]
fn past_the_budget_it_fails_naming_the_blocker_and_applies_nothing() {
    let (pid, err, took) = fail_behind(READS_STUDENT, NEW_WAY, waits(1, 3));

    let message = err.to_string();
    assert!(matches!(err, MigrateError::Failed { .. }), "{err:?}");
    for needle in [
        NEW_WAY.name,
        "could not take its locks in ",
        "migration_lock_budget",
        &format!("blocked by pid {pid} (idle in transaction for "),
        READS_STUDENT,
        "student AccessExclusiveLock",
        "rolled back whole",
    ] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
    assert!(took < Duration::from_secs(6), "gave up after {took:?}");
}

#[test]
fn a_concurrent_index_waits_at_most_the_budget_and_fails_naming_the_blocker() {
    // What autovacuum or another index build holds: CONCURRENTLY's own lock conflicts with it.
    let lock = "LOCK TABLE student IN SHARE UPDATE EXCLUSIVE MODE";
    let (pid, err, took) = fail_behind(lock, CONCURRENT_INDEX, waits(1, 2));

    let message = err.to_string();
    assert!(message.contains("lock timeout"), "{message}");
    assert!(
        message.contains(&format!("blocked by pid {pid}")),
        "{message}"
    );
    assert!(took < Duration::from_secs(5), "waited {took:?}");
}

#[test]
fn migrate_run_retries_the_email_check_behind_a_long_reader_and_logs_each_attempt() {
    // The case measured on the previous release: a transaction holds ACCESS SHARE on student for
    // 8 s while `migrate run` applies the email CHECK, which failed there after its 5 s wait.
    let db = TestDb::migrated();
    revert_through(&mut db.connect(), "_add_student_email_check_not_valid");
    let (pid, holder) = hold_lock(&db, READS_STUDENT, HOLD);

    let started = Instant::now();
    let ran = migrate(db.url(), &["run"]);
    let took = started.elapsed();
    holder.join().unwrap();

    assert!(ran.status.success(), "{}", ran.text());
    assert!(took >= HOLD - Duration::from_secs(1), "landed in {took:?}");
    let log = ran.text();
    assert!(
        log.contains("_add_student_email_check_not_valid: attempt 1 gave up waiting for a lock"),
        "{log}"
    );
    assert!(log.contains(&format!("blocked by pid {pid}")), "{log}");
    assert!(log.contains("migration_lock_budget spent"), "{log}");
    assert_eq!(applied_versions(&mut db.connect()).len(), FILES.len());
}
