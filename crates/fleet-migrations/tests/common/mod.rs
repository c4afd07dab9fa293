//! What the engine's test files share: a database of their own, and a count.

// Each test file uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use diesel_fleet_migrations::{MigrateError, Migrations, Migrator, Waits};

/// A database of its own, dropped when the test ends.
pub struct Database {
    admin: String,
    name: String,
    pub url: String,
}

impl Database {
    pub fn new() -> Database {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let admin = std::env::var("DATABASE_URL").expect(
            "the engine's tests need a PostgreSQL server: run scripts/test.sh, or set \
             DATABASE_URL to a server where this role may create databases",
        );
        let name = format!(
            "engine_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut connect(&admin))
            .expect("create the test database");
        let (server, _) = admin.rsplit_once('/').expect("a URL with a database");
        let url = format!("{server}/{name}");
        Database { admin, name, url }
    }

    pub fn migrator(&self, set: Migrations, waits: Waits) -> Result<Migrator, MigrateError> {
        Migrator::connect(&self.url, set, waits)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut connect(&self.admin));
    }
}

pub fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|err| panic!("connect to {url}: {err}"))
}

/// The `count` column of `query`'s one row.
pub fn count(conn: &mut PgConnection, query: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let Count { count } = sql_query(query).get_result(conn).unwrap();
    count
}
