//! The service run as an app role granted only what deploy/postgres/roles.sql grants: every
//! endpoint, /ready and /metrics work, while DDL and writes to the migration history fail; the
//! owner, the negative control, can do both.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use rocket::http::{Method, Status};
use serde_json::json;

use crate::bad_input::check_every_case;
use crate::helpers::{TestDb, bearer, client_with, connect, delete, figment, get_json, send_json};

/// A login role, dropped (with its grants) when the test ends, before its database is.
struct AppRole {
    name: String,
    url: String,
    db_url: String,
}

impl AppRole {
    /// A new role, granted on `db` exactly what deploy/postgres/roles.sql grants the app role,
    /// with the role that owns `db`'s tables as the owner.
    fn create(db: &TestDb) -> AppRole {
        #[derive(QueryableByName)]
        struct Owner {
            #[diesel(sql_type = Text)]
            owner: String,
        }
        let mut conn = db.connect();
        let Owner { owner } = diesel::sql_query(
            "SELECT tableowner::text AS owner FROM pg_tables WHERE tablename = 'student'",
        )
        .get_result(&mut conn)
        .unwrap();
        let name = format!("students_app_{}_{}", std::process::id(), next_number());
        conn.batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD 'app-password'"))
            .unwrap();
        let grants = include_str!("../../deploy/postgres/roles.sql")
            .replace(":\"app\"", &format!("\"{name}\""))
            .replace(":\"owner\"", &format!("\"{owner}\""));
        conn.batch_execute(&grants)
            .expect("deploy/postgres/roles.sql applies");
        let mut url = url::Url::parse(db.url()).unwrap();
        url.set_username(&name).unwrap();
        url.set_password(Some("app-password")).unwrap();
        AppRole {
            name,
            url: url.to_string(),
            db_url: db.url().to_owned(),
        }
    }
}

/// Roles are the server's, not the database's: this process's pid and a counter keep their names
/// apart across parallel tests.
fn next_number() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for AppRole {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.db_url).and_then(|mut conn| {
            let sql = format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name);
            conn.batch_execute(&sql)
                .map_err(|err| ConnectionError::BadConnection(err.to_string()))
        });
        if let Err(err) = dropped {
            eprintln!("could not drop role {}: {err}", self.name);
        }
    }
}

#[test]
fn as_the_app_role_every_endpoint_works_and_ddl_fails_as_the_owner_it_succeeds() {
    let db = TestDb::migrated();
    let role = AppRole::create(&db);
    let client = client_with(
        figment(&db)
            .merge(("databases.students.url", role.url.as_str()))
            .merge(("migrate_on_start", false)),
    );

    assert_eq!(
        get_json(&client, "/ready"),
        (Status::Ok, json!({"status": "ready"}))
    );
    assert_eq!(get_json(&client, "/students").0, Status::Ok);
    let body = json!({"first_name": "Ada", "last_name": "Lovelace", "major": "Maths"});
    let created = send_json(&client, Method::Post, "/students", body.clone());
    assert_eq!(created.status(), Status::Created);
    let location = created.headers().get_one("Location").unwrap().to_owned();
    assert_eq!(
        send_json(&client, Method::Put, &location, body).status(),
        Status::Ok
    );
    let patch = json!({"email": "ada@example.org"});
    assert_eq!(
        send_json(&client, Method::Patch, &location, patch).status(),
        Status::Ok
    );
    assert_eq!(delete(&client, &location).status(), Status::NoContent);
    let metrics = client.get("/metrics").header(bearer(&client)).dispatch();
    assert_eq!(metrics.status(), Status::Ok);
    assert!(
        metrics
            .into_string()
            .unwrap()
            .contains("students_api_schema_migration_info{")
    );
    check_every_case(&client, &db);

    let mut app = connect(&role.url);
    for (statement, refusal) in [
        (
            "ALTER TABLE student ADD COLUMN nickname text",
            "must be owner",
        ),
        (
            "CREATE TABLE side_table (id int)",
            "permission denied for schema public",
        ),
        ("DROP TABLE student", "must be owner"),
        (
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('29990101000000')",
            "permission denied for table __diesel_schema_migrations",
        ),
    ] {
        let err = app
            .batch_execute(statement)
            .expect_err(statement)
            .to_string();
        assert!(err.contains(refusal), "{statement}: {err}");
    }

    // The negative control: the same DDL as the owner goes through.
    db.connect()
        .batch_execute("ALTER TABLE student ADD COLUMN nickname text")
        .expect("the owner may change the schema");
}
