//! Test databases and the in-process client. Every test gets a PostgreSQL database of its own,
//! created on the server `DATABASE_URL` names and dropped when the test ends, so tests run in
//! parallel and leave nothing behind. A test that is not about migrating gets a copy of a
//! template migrated once ([`TestDb::migrated`]); one that is gets an empty database
//! ([`TestDb::empty`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Bool, Text};
use rocket::data::Limits;
use rocket::figment::Figment;
use rocket::figment::providers::{Format, Toml};
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use students_api::auth::tokens::{self, Scope};
use students_api::migrate::{
    self, ApplyTarget, EmbeddedMigration, MIGRATIONS, Migrator, Order, PostDeploy, Waits,
};
use students_api::settings::{DATABASE, Settings};

/// Every test database is named `students_test_<pid>_<n>`, which lets a later run recognise
/// leftovers of a killed run by a pid that no longer exists.
const PREFIX: &str = "students_test_";

/// The template every migrated test database is copied from: `students_template_<digest>`, the
/// digest of the migrations and of this test binary, so a run with the same build reuses the
/// template of the run before, and any change gets a new one (the stale ones are swept).
const TEMPLATE_PREFIX: &str = "students_template_";

/// Seconds a request waits for a pooled connection in tests: short, so the unreachable-database
/// test is quick, but a real bound all the same.
pub const POOL_TIMEOUT_SECS: u64 = 1;

pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// A new database at the newest schema, seeded: what a started service leaves.
    pub fn migrated() -> Self {
        Self::create(Some(template()))
    }

    /// A new, empty database, for tests about migrating.
    pub fn empty() -> Self {
        Self::create(None)
    }

    fn create(template: Option<&str>) -> Self {
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
        let from = template.map_or(String::new(), |template| format!(" TEMPLATE {template}"));
        sql_query(format!("CREATE DATABASE {name}{from}"))
            .execute(&mut admin)
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        let url = database_url(&admin_url, &name);
        TestDb {
            name,
            url,
            admin_url,
        }
    }
    pub fn url(&self) -> &str {
        &self.url
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
    /// Makes the database take no more writes, the way a primary demoted in a failover looks to
    /// the sessions it keeps: every new session's transactions are read-only (25006 on a write),
    /// and the open ones are killed so that the pool opens new ones. `false` lets new sessions
    /// write again and leaves the open ones as they are.
    pub fn read_only(&self, on: bool) {
        let mut admin = connect(&self.admin_url);
        let set = match on {
            true => "SET default_transaction_read_only = on",
            false => "RESET default_transaction_read_only",
        };
        sql_query(format!("ALTER DATABASE {} {set}", self.name))
            .execute(&mut admin)
            .expect("set the database's default_transaction_read_only");
        if on {
            sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind::<Text, _>(&self.name)
            .execute(&mut admin)
            .expect("terminate open connections");
        }
    }

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

/// The name of this run's template, built on first use: migrated under a temporary name and
/// renamed when complete, so no run ever copies a half-migrated one, and closed to connections,
/// which copying requires.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let admin_url = admin_url();
        let mut admin = connect(&admin_url);
        let name = format!("{TEMPLATE_PREFIX}{}", build_digest());
        // Another test process (cargo nextest runs one per test) may be building the same one.
        let key = i64::from_be_bytes(Sha256::digest(&name)[..8].try_into().unwrap());
        sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(key)
            .execute(&mut admin)
            .expect("take the template lock");
        if !database_exists(&mut admin, &name) {
            let building = format!("{name}_building_{}", std::process::id());
            sql_query(format!("DROP DATABASE IF EXISTS {building}"))
                .execute(&mut admin)
                .expect("drop an unfinished template");
            sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut admin)
                .unwrap_or_else(|err| panic!("cannot create {building}: {err}"));
            Migrator::connect(
                &database_url(&admin_url, &building),
                MIGRATIONS,
                Waits::default(),
            )
            .and_then(|mut migrator| {
                migrator.run(&ApplyTarget::All, PostDeploy::Apply, Order::InOrder)
            })
            .unwrap_or_else(|err| panic!("cannot migrate the template: {err}"));
            for statement in [
                format!("ALTER DATABASE {building} RENAME TO {name}"),
                format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"),
            ] {
                sql_query(statement)
                    .execute(&mut admin)
                    .expect("finish the template");
            }
        }
        sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<BigInt, _>(key)
            .execute(&mut admin)
            .expect("release the template lock");
        name
    })
}

/// What the template depends on: every migration's files, and this test binary (whose code
/// applies them).
fn build_digest() -> String {
    let mut digest = Sha256::new();
    for migration in MIGRATIONS.list {
        digest.update(migration.name);
        digest.update(migration.up);
        digest.update(migration.down.unwrap_or_default());
    }
    let binary = std::env::current_exe().and_then(std::fs::metadata);
    if let Ok(binary) = binary {
        digest.update(binary.len().to_be_bytes());
        digest.update(format!("{:?}", binary.modified().ok()));
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..16].to_owned()
}

fn database_exists(admin: &mut PgConnection, name: &str) -> bool {
    sql_query("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result::<Exists>(admin)
        .expect("query pg_database")
        .exists
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("DATABASE_URL is a URL");
    url.set_path(name);
    url.into()
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

/// Drops test databases whose creating process is gone (a run killed before its guards dropped),
/// and templates of other builds.
fn sweep_leftovers(admin: &mut PgConnection) {
    let current = format!("{TEMPLATE_PREFIX}{}", build_digest());
    let Ok(rows) =
        sql_query("SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname LIKE $2")
            .bind::<Text, _>(format!("{PREFIX}%"))
            .bind::<Text, _>(format!("{TEMPLATE_PREFIX}%"))
            .load::<Datname>(admin)
    else {
        return;
    };
    for Datname { datname } in rows {
        let stale = match datname.strip_prefix(PREFIX) {
            Some(rest) => rest
                .split('_')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()),
            // Without FORCE: a run of another build may be copying it right now.
            None => !datname.starts_with(&current),
        };
        if stale {
            let _ = sql_query(format!("ALTER DATABASE {datname} IS_TEMPLATE false")).execute(admin);
            let _ = sql_query(format!("DROP DATABASE IF EXISTS {datname}")).execute(admin);
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
            format!("databases.{DATABASE}"),
            json!({"url": db.url(), "pool_size": 2, "timeout": POOL_TIMEOUT_SECS}),
        ))
}

/// The real service over `db`, migrated at ignition as in production.
pub fn client(db: &TestDb) -> Client {
    client_with(figment(db))
}

/// The real service, configured by `figment`.
pub fn client_with(figment: Figment) -> Client {
    Client::tracked(students_api::build(figment)).expect("the service ignites")
}

/// A live token of scope `students` in the database `client`'s service serves: one per database,
/// made as `students-api token create` makes it.
pub fn token(client: &Client) -> String {
    let settings =
        Settings::from_figment(client.rocket().figment().clone()).expect("the client's settings");
    token_of(settings.database_url())
}

/// The token of the database at `url` (see [`token`]).
pub fn token_of(url: &str) -> String {
    static TOKENS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut made = TOKENS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (made.entry(url.to_owned()))
        .or_insert_with(|| {
            tokens::create(&mut connect(url), "tests", Scope::Students).expect("create a token")
        })
        .clone()
}

/// `Authorization: Bearer <token>` with `client`'s [`token`].
pub fn bearer(client: &Client) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {}", token(client)))
}

/// `body` sent as JSON, with a token.
pub fn send_json<'c>(
    client: &'c Client,
    method: Method,
    uri: &str,
    body: Value,
) -> LocalResponse<'c> {
    client
        .req(method, uri.to_owned())
        .header(ContentType::JSON)
        .header(bearer(client))
        .body(body.to_string())
        .dispatch()
}

/// `DELETE uri`, with a token.
pub fn delete<'c>(client: &'c Client, uri: &str) -> LocalResponse<'c> {
    client
        .delete(uri.to_owned())
        .header(bearer(client))
        .dispatch()
}

/// `GET uri`: the status and the body as JSON (`null` when it is not JSON).
pub fn get_json(client: &Client, uri: &str) -> (Status, Value) {
    let response = client.get(uri.to_owned()).dispatch();
    (
        response.status(),
        response.into_json().unwrap_or(Value::Null),
    )
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
pub const FILES: &[EmbeddedMigration] = MIGRATIONS.list;

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
        .find(|migration| migration.name.ends_with(suffix))
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
