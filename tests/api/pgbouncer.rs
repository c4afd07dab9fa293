//! The request pool through a real PgBouncer in transaction pooling mode, with fewer server
//! connections than the pool has, with the default settings: `prepared_statements = "auto"` sees
//! that the server was not reached at the URL's address and turns diesel's prepared statements
//! off, so every endpoint, `/ready`, `/metrics` and concurrent writers work (every read of an
//! existing row finds it), and a restart of PgBouncer under write load costs only fast 503s. With
//! the statements kept (`true`, the negative control) the same load fails.
//!
//! With `PGBOUNCER_ROOT` (scripts/debian13-root.sh) they run against PgBouncer 1.24 with
//! `max_prepared_statements` instead, and with the statements kept (`true`), as the docs advise
//! for it; the same load then succeeds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use rocket::figment::Figment;
use rocket::http::{Method, Status};
use serde_json::{Value, json};

use crate::bad_input::check_every_case;
use crate::helpers::{
    POOL_TIMEOUT_SECS, TestDb, bearer, client_with, delete, figment, get_json, send_json, token_of,
};
use crate::pooler::{PgBouncer, SERVER_CONNECTIONS, carries_statements};
use crate::process::{self, Service};

/// The pool of a replica behind the pooler: more connections than PgBouncer has server ones.
const POOL_SIZE: u32 = 2 * SERVER_CONNECTIONS;

/// The service's configuration through `bouncer`, as a fleet runs it: migrated beforehand over
/// the direct URL, the request pool through the pooler, `prepared_statements` left to its
/// default.
fn through(db: &TestDb, bouncer: &PgBouncer) -> Figment {
    let figment = figment(db)
        .merge(("databases.students.url", bouncer.url()))
        .merge(("databases.students.pool_size", POOL_SIZE))
        .merge(("migrate_on_start", false));
    match advised() {
        Some(kept) => figment.merge(("prepared_statements", kept)),
        None => figment,
    }
}

/// `prepared_statements` as docs/operations.md advises for the PgBouncer under test: kept
/// (`true`) behind one that carries them, the default (`"auto"`, which turns them off) behind
/// one that cannot.
fn advised() -> Option<bool> {
    carries_statements().then_some(true)
}

#[test]
fn every_endpoint_and_the_probes_work_through_pgbouncer_in_transaction_mode() {
    let db = TestDb::migrated();
    let bouncer = PgBouncer::start(&db);
    let client = client_with(through(&db, &bouncer));

    assert_eq!(
        get_json(&client, "/ready"),
        (Status::Ok, json!({"status": "ready"}))
    );
    let (status, all) = get_json(&client, "/students");
    assert_eq!((status, all.as_array().unwrap().len()), (Status::Ok, 5));
    let (_, filtered) = get_json(&client, "/students?major=Computer%20Science&limit=1");
    assert_eq!(filtered[0]["first_name"], "Alice");
    assert_eq!(get_json(&client, "/students/3").1["first_name"], "Carol");
    let body = json!({"first_name": "Ada", "last_name": "Lovelace", "major": "Maths"});
    let created = send_json(&client, Method::Post, "/students", body);
    assert_eq!(created.status(), Status::Created);
    let location = created.headers().get_one("Location").unwrap().to_owned();
    let body = json!({"first_name": "Ada", "last_name": "King", "major": "Maths"});
    assert_eq!(
        send_json(&client, Method::Put, &location, body).status(),
        Status::Ok
    );
    let body = json!({"email": "ada@example.org"});
    let patched = send_json(&client, Method::Patch, &location, body);
    assert_eq!(
        patched.into_json::<Value>().unwrap()["email"],
        "ada@example.org"
    );
    assert_eq!(delete(&client, &location).status(), Status::NoContent);
    assert_eq!(get_json(&client, &location).0, Status::NotFound);
    let metrics = (client.get("/metrics").header(bearer(&client)))
        .dispatch()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("students_api_schema_migration_info{"),
        "{metrics}"
    );

    check_every_case(&client, &db);
}

/// What a burst of mixed requests got.
#[derive(Default)]
struct Answers {
    statuses: Vec<u16>,
    /// Each student a write was acknowledged for: id -> (first_name, major) as acknowledged.
    acknowledged: HashMap<i32, (String, String)>,
}

/// `threads` clients, each sending `requests` of a mix of POST, GET by id, a filtered page and
/// PATCH, each on the students it created.
fn mixed_load(port: u16, token: &str, threads: usize, requests: usize) -> Answers {
    let answers = Arc::new(Mutex::new(Answers::default()));
    let workers: Vec<_> = (0..threads)
        .map(|worker| {
            let answers = Arc::clone(&answers);
            let token = token.to_owned();
            thread::spawn(move || {
                let mut mine: Vec<i32> = Vec::new();
                for n in 0..requests {
                    let name = format!("W{worker}x{n}");
                    let (method, path, body) = match (n % 4, mine.last()) {
                        (1, Some(id)) => ("GET", format!("/students/{id}"), None),
                        (2, _) => ("GET", "/students?major=Load&limit=5".to_owned(), None),
                        (3, Some(id)) => (
                            "PATCH",
                            format!("/students/{id}"),
                            Some(json!({"major": format!("Load {n}")})),
                        ),
                        _ => (
                            "POST",
                            "/students".to_owned(),
                            Some(json!({"first_name": name, "last_name": "L", "major": "Load"})),
                        ),
                    };
                    let answer = match &body {
                        Some(body) => process::send_json(port, &token, method, &path, body),
                        None => process::request(port, method, &path),
                    };
                    let (status, _, text) = answer.unwrap_or((0, String::new(), String::new()));
                    let mut answers = answers.lock().unwrap();
                    answers.statuses.push(status);
                    if body.is_some() && (status == 200 || status == 201) {
                        let student: Value = serde_json::from_str(&text).unwrap();
                        let id = student["id"].as_i64().unwrap() as i32;
                        let fields = (
                            student["first_name"].to_string(),
                            student["major"].to_string(),
                        );
                        answers.acknowledged.insert(id, fields);
                        if status == 201 {
                            mine.push(id);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    Arc::try_unwrap(answers).ok().unwrap().into_inner().unwrap()
}

/// The acknowledged students that the table, read over the direct URL, does not hold as
/// acknowledged.
fn missing_writes(db: &TestDb, acknowledged: &HashMap<i32, (String, String)>) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        id: i32,
        #[diesel(sql_type = Text)]
        first_name: String,
        #[diesel(sql_type = Text)]
        major: String,
    }
    let stored: HashMap<i32, (String, String)> =
        diesel::sql_query("SELECT id, first_name, major FROM student")
            .load::<Row>(&mut db.connect())
            .unwrap()
            .into_iter()
            .map(|row| {
                (
                    row.id,
                    (
                        json!(row.first_name).to_string(),
                        json!(row.major).to_string(),
                    ),
                )
            })
            .collect();
    (acknowledged.iter())
        .filter(|(id, fields)| stored.get(id) != Some(fields))
        .map(|(id, fields)| format!("{id}: acknowledged {fields:?}, stored {:?}", stored.get(id)))
        .collect()
}

/// A replica of the binary through `bouncer`, with as many blocking threads as connections, and
/// `prepared_statements` as given (`None`: the default).
fn replica(bouncer: &PgBouncer, prepared_statements: Option<bool>, pool_timeout: u64) -> Service {
    let databases = format!("{{students={{pool_size={POOL_SIZE},timeout={pool_timeout}}}}}");
    let pool_size = POOL_SIZE.to_string();
    let mut env = vec![
        ("ROCKET_MIGRATE_ON_START", "false"),
        ("ROCKET_DATABASES", databases.as_str()),
        ("ROCKET_MAX_BLOCKING", pool_size.as_str()),
        // Errors only: a captured log that nobody reads until the end must not fill up.
        ("ROCKET_LOG_LEVEL", "critical"),
    ];
    let kept = prepared_statements.map(|on| on.to_string());
    if let Some(kept) = &kept {
        env.push(("ROCKET_PREPARED_STATEMENTS", kept.as_str()));
    }
    let mut service = Service::start_with(bouncer.url(), &env);
    service.wait_until_serving("/health").unwrap();
    service
}

/// What `prepared_statements = "auto"` decided for a replica whose request pool uses `url`, from
/// the line it logs.
fn auto_decision(url: &str) -> String {
    let mut service = Service::start_with(
        url,
        &[
            ("ROCKET_MIGRATE_ON_START", "false"),
            ("ROCKET_LOG_LEVEL", "normal"),
        ],
    );
    service.wait_until_serving("/students").unwrap();
    let log = service.stop();
    let line = log
        .lines()
        .find(|line| line.contains("prepared statements "));
    line.unwrap_or_else(|| panic!("no decision logged:\n{log}"))
        .to_owned()
}

#[test]
fn auto_keeps_prepared_statements_direct_and_turns_them_off_through_pgbouncer() {
    let db = TestDb::migrated();
    let bouncer = PgBouncer::start(&db);

    let direct = auto_decision(db.url());
    let pooled = auto_decision(bouncer.url());

    assert!(direct.contains("prepared statements kept"), "{direct}");
    assert!(pooled.contains("prepared statements off"), "{pooled}");
    assert!(pooled.contains("prepared_statements = true"), "{pooled}");
}

#[test]
fn concurrent_writers_through_pgbouncer_are_all_answered_and_all_stored() {
    let db = TestDb::migrated();
    let bouncer = PgBouncer::start(&db);
    let service = replica(&bouncer, advised(), 3);

    let answers = mixed_load(service.port, &token_of(db.url()), 16, 60);

    let failed: Vec<&u16> = answers
        .statuses
        .iter()
        .filter(|s| !matches!(s, 200 | 201))
        .collect();
    let log = service.stop();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}\n{log}",
        failed.len(),
        answers.statuses.len()
    );
    assert!(
        answers.acknowledged.len() > 100,
        "{}",
        answers.acknowledged.len()
    );
    assert_eq!(
        missing_writes(&db, &answers.acknowledged),
        Vec::<String>::new()
    );
    assert!(!log.contains("Error"), "{log}");
}

/// The negative control of the test above: the same load with diesel's prepared statements
/// kept fails behind PgBouncer 1.18, and the log says once what to do. Behind 1.24, which carries
/// them, it is the test above again, with the statements kept.
#[test]
fn with_prepared_statements_kept_the_load_fails_behind_1_18_saying_why_and_is_served_behind_1_24() {
    let db = TestDb::migrated();
    let bouncer = PgBouncer::start(&db);
    let service = replica(&bouncer, Some(true), 3);

    let answers = mixed_load(service.port, &token_of(db.url()), 16, 60);

    let log = service.stop();
    let failed = answers.statuses.iter().filter(|s| **s == 500).count();
    eprintln!("{failed} of {} answered 500", answers.statuses.len());
    if carries_statements() {
        let failed: Vec<&u16> = (answers.statuses.iter())
            .filter(|s| !matches!(s, 200 | 201))
            .collect();
        assert!(failed.is_empty(), "{failed:?}\n{log}");
        assert_eq!(
            missing_writes(&db, &answers.acknowledged),
            Vec::<String>::new()
        );
        return;
    }
    assert!(failed > 0, "no request failed: {:?}", answers.statuses);
    let explanations = log
        .matches("a transaction pooler without prepared-statement support")
        .count();
    assert_eq!(explanations, 1, "{log}");
    assert!(log.contains("prepared_statements = \"auto\""), "{log}");
    assert!(log.contains("max_prepared_statements"), "{log}");
}

/// One write of the restart test, as the client saw it.
struct Write {
    started: Instant,
    took: Duration,
    status: u16,
    head: String,
    body: String,
}

#[test]
fn a_pgbouncer_restart_under_write_load_costs_only_fast_503s_and_no_acknowledged_write() {
    let db = TestDb::migrated();
    let mut bouncer = PgBouncer::start(&db);
    let service = replica(&bouncer, advised(), POOL_TIMEOUT_SECS);
    let port = service.port;
    let token = token_of(db.url());
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|worker| {
            let (stop, writes) = (Arc::clone(&stop), Arc::clone(&writes));
            let token = token.clone();
            thread::spawn(move || {
                // Bounded in count as well as by the test's own clock.
                for n in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = json!({"first_name": format!("R{worker}x{n}"), "last_name": "L", "major": "Restart"});
                    let started = Instant::now();
                    let (status, head, body) = process::send_json(port, &token, "POST", "/students", &body)
                        .unwrap_or((0, String::new(), String::new()));
                    let took = started.elapsed();
                    writes.lock().unwrap().push(Write { started, took, status, head, body });
                }
            })
        })
        .collect();

    thread::sleep(Duration::from_secs(1));
    let down = Instant::now();
    bouncer.kill();
    thread::sleep(Duration::from_secs(2));
    bouncer.resume();
    let up = Instant::now();
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let log = service.stop();
    let writes = Arc::try_unwrap(writes).ok().unwrap().into_inner().unwrap();

    let unexpected: Vec<u16> = writes
        .iter()
        .map(|w| w.status)
        .filter(|s| !matches!(s, 201 | 503))
        .collect();
    assert!(
        unexpected.is_empty(),
        "statuses other than 201 and 503: {unexpected:?}\n{log}"
    );
    let unavailable: Vec<&Write> = writes.iter().filter(|w| w.status == 503).collect();
    assert!(
        unavailable
            .iter()
            .any(|w| w.started >= down && w.started < up),
        "the outage was never seen"
    );
    for write in &unavailable {
        assert!(
            write.head.to_lowercase().contains("retry-after: 1"),
            "{}",
            write.head
        );
        assert!(serde_json::from_str::<Value>(&write.body).unwrap()["detail"].is_string());
        let bound = Duration::from_secs(POOL_TIMEOUT_SECS) + Duration::from_millis(1500);
        assert!(write.took <= bound, "a 503 took {:?}", write.took);
    }
    let late: Vec<u16> = (writes.iter())
        .filter(|w| w.started > up + Duration::from_secs(2))
        .map(|w| w.status)
        .collect();
    assert!(
        !late.is_empty() && late.iter().all(|s| *s == 201),
        "2 s after the restart: {late:?}"
    );
    let recovered = (writes.iter())
        .filter(|w| w.status == 201 && w.started + w.took > up)
        .map(|w| (w.started + w.took).duration_since(up))
        .min();
    assert!(
        recovered.is_some_and(|after| after <= Duration::from_secs(2)),
        "{recovered:?}"
    );
    let acknowledged: HashMap<i32, (String, String)> = (writes.iter())
        .filter(|w| w.status == 201)
        .map(|w| {
            let student: Value = serde_json::from_str(&w.body).unwrap();
            let id = student["id"].as_i64().unwrap() as i32;
            (
                id,
                (
                    student["first_name"].to_string(),
                    student["major"].to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(missing_writes(&db, &acknowledged), Vec::<String>::new());
}

#[test]
fn replicas_started_one_after_another_through_pgbouncer_each_check_the_schema_and_serve() {
    // Each start reads the catalog over the pool's URL; with prepared statements left on, the
    // second start met the first's statement on the same server connection and refused to start.
    let db = TestDb::migrated();
    let bouncer = PgBouncer::start(&db);
    for start in 1..=3 {
        let client = client_with(through(&db, &bouncer));
        assert_eq!(
            get_json(&client, "/ready"),
            (Status::Ok, json!({"status": "ready"})),
            "start {start}"
        );
    }
}
