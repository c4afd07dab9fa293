//! Where configuration comes from: `Rocket.toml` and `ROCKET_*` variables, as in any Rocket
//! service, with `DATABASE_URL` on top because it is the variable the diesel CLI, `.env` and
//! docker-compose already agree on.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

use rocket::figment::{self, Figment};
use rocket::serde::Deserialize;

/// Name of the database in Rocket's `databases` table; `Rocket.toml` configures
/// `[default.databases.students]`.
pub const DATABASE: &str = "students";

/// The configuration the binary runs with.
pub fn figment() -> Figment {
    with_database_url(
        rocket::Config::figment(),
        std::env::var("DATABASE_URL").ok(),
    )
}

/// `figment` with the pool's URL replaced by `database_url` when there is one.
pub fn with_database_url(figment: Figment, database_url: Option<String>) -> Figment {
    match database_url {
        Some(url) => figment.merge((format!("databases.{DATABASE}.url"), url)),
        None => figment,
    }
}

/// The pool's database URL: what the service and the `migrate` subcommands connect to.
pub fn database_url(figment: &Figment) -> Result<String, Box<figment::Error>> {
    Ok(figment.extract_inner(&format!("databases.{DATABASE}.url"))?)
}

/// Where the service listens: Rocket's `address` and `port`.
pub fn listen_address(figment: &Figment) -> Result<SocketAddr, Box<figment::Error>> {
    let address: IpAddr = figment.extract_inner("address")?;
    let port: u16 = figment.extract_inner("port")?;
    Ok(SocketAddr::new(address, port))
}

/// Fails, saying what to change, when the service could not listen on `address`. Rocket binds
/// only after ignition, which is after migrating: a port already taken would stop the start once
/// the schema had changed, with a message that names no setting. Binding once here fails first.
pub fn check_can_listen(address: SocketAddr) -> Result<(), String> {
    match TcpListener::bind(address) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AddrInUse => Err(format!(
            "port {} on {} is already in use (another copy of this service?): stop what \
             listens there, or choose another port with ROCKET_PORT or `port` in Rocket.toml",
            address.port(),
            address.ip(),
        )),
        Err(err) => Err(format!(
            "cannot listen on {address}: {err}; choose another with ROCKET_ADDRESS and \
             ROCKET_PORT, or `address` and `port` in Rocket.toml"
        )),
    }
}

/// How the service migrates.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "rocket::serde")]
pub struct MigrationSettings {
    /// Apply pending migrations at start, post-deploy ones included. Deployments that migrate in
    /// separate steps (`students-api migrate run --skip-post-deploy` before a rollout, `migrate
    /// run` after it), as every fleet must, turn this off: `ROCKET_MIGRATE_ON_START=false`.
    #[serde(default = "yes")]
    pub migrate_on_start: bool,
    /// Seconds to wait for another process's migration to finish before giving up.
    #[serde(default = "five_minutes")]
    pub migration_lock_timeout: u64,
    /// Seconds to keep retrying, at start, a database that does not answer yet (it is often
    /// still starting when the service does) before exiting with an error.
    #[serde(default = "half_a_minute")]
    pub database_wait: u64,
}

impl MigrationSettings {
    pub fn lock_timeout(&self) -> Duration {
        Duration::from_secs(self.migration_lock_timeout)
    }

    pub fn database_wait(&self) -> Duration {
        Duration::from_secs(self.database_wait)
    }
}

fn half_a_minute() -> u64 {
    30
}

fn yes() -> bool {
    true
}

fn five_minutes() -> u64 {
    300
}

pub fn migration_settings(figment: &Figment) -> Result<MigrationSettings, Box<figment::Error>> {
    Ok(figment.extract()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};

    fn shipped_rocket_toml() -> Figment {
        Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")).nested())
    }

    fn pool_url(figment: &Figment) -> String {
        database_url(figment).expect("a database url is configured")
    }

    #[test]
    fn database_url_from_the_environment_wins_over_rocket_toml() {
        let url = "postgres://someone:secret@db.example:5432/elsewhere".to_owned();
        let figment = with_database_url(shipped_rocket_toml(), Some(url.clone()));
        assert_eq!(pool_url(&figment), url);
    }

    #[test]
    fn without_database_url_rocket_toml_points_at_the_compose_database_on_port_5439() {
        let figment = with_database_url(shipped_rocket_toml(), None);
        assert_eq!(
            pool_url(&figment),
            "postgres://user1:password1@127.0.0.1:5439/database1"
        );
        let port: u16 = figment.extract_inner("port").expect("a port is configured");
        assert_eq!(port, 8089);
    }

    #[test]
    fn a_taken_port_is_named_with_the_setting_that_changes_it() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let message = check_can_listen(taken.local_addr().unwrap()).unwrap_err();
        let port = taken.local_addr().unwrap().port();
        assert!(message.starts_with(&format!("port {port} on 127.0.0.1 is already in use")));
        assert!(message.contains("ROCKET_PORT"), "{message}");
        drop(taken);
    }

    #[test]
    fn rocket_toml_limits_json_bodies_to_64_kib() {
        let limits: rocket::data::Limits = shipped_rocket_toml().extract_inner("limits").unwrap();
        assert_eq!(
            limits.get("json"),
            Some(rocket::data::ByteUnit::Kibibyte(64))
        );
    }
}
