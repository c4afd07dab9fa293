//! Test databases and clients. Every test gets a PostgreSQL database of its own, created on the
//! server `DATABASE_URL` names and dropped when the test ends, so tests run in parallel and leave
//! nothing behind.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

pub mod process;

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Bool, Text};
use rocket::data::Limits;
use rocket::figment::Figment;
use rocket::figment::providers::{Format, Toml};
use rocket::local::blocking::Client;
use serde_json::json;
use students_api::migrate::{self, MIGRATIONS, MigrationFiles};

/// Every test database is named `students_test_<pid>_<n>`, which lets a later run recognise
/// leftovers of a killed run by a pid that no longer exists.
const PREFIX: &str = "students_test_";

/// Seconds a request waits for a pooled connection in tests: short, so the unreachable-database
/// test is quick, but a real bound all the same.
pub const POOL_TIMEOUT_SECS: u64 = 1;

pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// A new, empty database.
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let admin_url = admin_url();
        let mut admin = connect(&admin_url);
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| sweep_leftovers(&mut admin));

        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        TestDb {
            name,
            url: url.into(),
            admin_url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn connect(&self) -> PgConnection {
        connect(&self.url)
    }

    /// Makes the database unreachable the way a crashed or partitioned server looks to the
    /// service: open connections are killed and new ones refused.
    pub fn refuse_connections(&self) {
        let mut admin = connect(&self.admin_url);
        sql_query(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ))
        .execute(&mut admin)
        .expect("refuse new connections");
        sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<Text, _>(&self.name)
        .execute(&mut admin)
        .expect("terminate open connections");
    }
}

impl TestDb {
    /// Undoes [`TestDb::refuse_connections`].
    pub fn allow_connections(&self) {
        sql_query(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ))
        .execute(&mut connect(&self.admin_url))
        .expect("allow connections");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // FORCE: the service under test may still hold pooled connections.
        let result = PgConnection::establish(&self.admin_url).and_then(|mut admin| {
            sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .map_err(|err| ConnectionError::BadConnection(err.to_string()))
        });
        if let Err(err) = result {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}

/// The server tests create their databases on. `./scripts/test.sh` starts one and sets this.
fn admin_url() -> String {
    let _ = dotenvy::dotenv();
    std::env::var("DATABASE_URL").expect(
        "tests need a PostgreSQL server: run ./scripts/test.sh, which starts one, \
         or set DATABASE_URL to a server where this role may create databases",
    )
}

pub fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"))
}

#[derive(QueryableByName)]
struct Datname {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Drops test databases whose creating process is gone (a run killed before its guards dropped).
fn sweep_leftovers(admin: &mut PgConnection) {
    let Ok(rows) = sql_query("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind::<Text, _>(format!("{PREFIX}%"))
        .load::<Datname>(admin)
    else {
        return;
    };
    for Datname { datname } in rows {
        let pid = datname
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ =
                sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)")).execute(admin);
        }
    }
}

/// The service's configuration for a test: its database, a small pool with a short timeout, the
/// request limits of the shipped `Rocket.toml`, and Rocket's quiet test defaults otherwise.
pub fn figment(db: &TestDb) -> Figment {
    let shipped =
        Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")).nested());
    let limits: Limits = shipped
        .extract_inner("limits")
        .expect("Rocket.toml sets limits");
    Figment::from(rocket::Config::debug_default())
        .merge(("log_level", "critical"))
        .merge(("limits", limits))
        .merge((
            "databases.students",
            json!({"url": db.url(), "pool_size": 2, "timeout": POOL_TIMEOUT_SECS}),
        ))
}

/// The real service over `db`, migrated at ignition as in production.
pub fn client(db: &TestDb) -> Client {
    Client::tracked(students_api::build(figment(db))).expect("the service ignites")
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

pub fn table_exists(conn: &mut PgConnection, table: &str) -> bool {
    sql_query("SELECT to_regclass($1) IS NOT NULL AS exists")
        .bind::<Text, _>(table)
        .get_result::<Exists>(conn)
        .expect("query the catalog")
        .exists
}

#[derive(QueryableByName)]
struct Relname {
    #[diesel(sql_type = Text)]
    relname: String,
}

/// Tables, views, sequences and functions in `public`, sorted: what a migration can leave behind.
pub fn public_objects(conn: &mut PgConnection) -> Vec<String> {
    sql_query(
        "SELECT c.relname::text AS relname FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S', 'm', 'p') \
         UNION ALL \
         SELECT p.proname::text || '()' FROM pg_proc p \
           JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE n.nspname = 'public' \
         ORDER BY 1",
    )
    .load::<Relname>(conn)
    .expect("query the catalog")
    .into_iter()
    .map(|row| row.relname)
    .collect()
}

/// The service's migrations, in version order.
pub const FILES: &[MigrationFiles] = MIGRATIONS.0;

/// Versions diesel has recorded as applied, in order; none before its table exists.
pub fn applied_versions(conn: &mut PgConnection) -> Vec<String> {
    migrate::applied(conn)
        .expect("read __diesel_schema_migrations")
        .into_iter()
        .map(|(version, _)| version)
        .collect()
}

/// Reverts migrations, newest first, up to and including the one whose name ends with `suffix`.
pub fn revert_through(conn: &mut PgConnection, suffix: &str) {
    use diesel_migrations::MigrationHarness;

    let target = FILES
        .iter()
        .find(|files| files.name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no migration named *{suffix}"))
        .version();
    // Diesel's own harness, as the diesel CLI would revert: no checksum is forgotten.
    loop {
        let reverted = conn.revert_last_migration(MIGRATIONS).expect("revert");
        if reverted.to_string() == target {
            return;
        }
    }
}

/// A digest of every row of `student`: equal before and after means nothing was written.
pub fn students_fingerprint(conn: &mut PgConnection) -> String {
    #[derive(QueryableByName)]
    struct Digest {
        #[diesel(sql_type = Text)]
        digest: String,
    }
    sql_query(
        "SELECT count(*) || ':' || coalesce(md5(string_agg(s::text, ',' ORDER BY id)), '') \
         AS digest FROM student s",
    )
    .get_result::<Digest>(conn)
    .expect("read student")
    .digest
}

/// The schema as text, one sorted line per column, constraint, index, trigger, function and
/// relation, plus the rows of `student`: equal dumps mean equal schemas (and data). The
/// bookkeeping tables (`__*`) are left out: they record history rather than schema.
pub fn schema_dump(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    let mut lines: Vec<String> = sql_query(
        r"SELECT line FROM (
            SELECT format('column %s.%s %s null=%s default=%s identity=%s',
                          table_name, column_name, data_type, is_nullable,
                          coalesce(column_default, ''), is_identity) AS line
              FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name NOT LIKE '\_\_%'
            UNION ALL
            SELECT format('constraint %s %s %s valid=%s', conrelid::regclass, conname,
                          pg_get_constraintdef(oid), convalidated)
              FROM pg_constraint
             WHERE connamespace = 'public'::regnamespace
               AND conrelid::regclass::text NOT LIKE '\_\_%'
            UNION ALL
            SELECT format('index %s valid=%s', pg_get_indexdef(i.indexrelid), i.indisvalid)
              FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
             WHERE t.relnamespace = 'public'::regnamespace AND t.relname NOT LIKE '\_\_%'
            UNION ALL
            SELECT format('trigger %s', pg_get_triggerdef(oid))
              FROM pg_trigger WHERE NOT tgisinternal
            UNION ALL
            SELECT format('function %s', pg_get_functiondef(oid))
              FROM pg_proc WHERE pronamespace = 'public'::regnamespace
            UNION ALL
            SELECT format('relation %s kind=%s', relname, relkind)
              FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relname NOT LIKE '\_\_%'
          ) AS dump",
    )
    .load::<Line>(conn)
    .expect("read the catalog")
    .into_iter()
    .map(|row| row.line)
    .collect();
    if table_exists(conn, "student") {
        #[derive(QueryableByName)]
        struct Rows {
            #[diesel(sql_type = Text)]
            rows: String,
        }
        let rows = sql_query(
            "SELECT count(*) || ' ' || coalesce(md5(string_agg( \
               format('%s|%s|%s|%s', id, first_name, last_name, major), ',' ORDER BY id)), '') \
             AS rows FROM student",
        )
        .get_result::<Rows>(conn)
        .expect("read student");
        lines.push(format!("rows student {}", rows.rows));
    }
    lines.sort();
    lines
}
