//! Every setting the service reads, in one [`Settings`], extracted once from the configuration
//! and refused whole, with the key and the value named, when any one of them is invalid.
//!
//! The configuration is Rocket's: `Rocket.toml` and `ROCKET_*` variables, with `DATABASE_URL` on
//! top because it is the variable the diesel CLI, `.env` and docker-compose already agree on.
//! Three parts are read from it, each by the type that owns it:
//! - Rocket's own keys (`address`, `port`, `log_level`, `max_blocking`, ...) by `rocket::Config`;
//! - the pool (`[databases.students]`) by rocket_sync_db_pools' `Config`, with its defaults,
//!   plus `min_idle`, which that crate does not know;
//! - this service's own top-level keys by [`ServiceSettings`], whose `Default` holds every
//!   default.

use std::fmt;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rocket::figment::providers::Serialized;
use rocket::figment::{self, Figment};
use rocket::serde::Deserialize;

use crate::migrate::Waits;

/// Name of the database in Rocket's `databases` table; `Rocket.toml` configures
/// `[default.databases.students]`.
pub const DATABASE: &str = "students";

/// Where a pool key lives in the configuration: `databases.students.<key>`.
pub fn pool_key(key: &str) -> String {
    format!("databases.{DATABASE}.{key}")
}

/// The configuration the binary runs with.
pub fn figment() -> Figment {
    with_database_url(
        without_trusted_ip_header(rocket::Config::figment()),
        std::env::var("DATABASE_URL").ok(),
    )
}

/// `figment` with Rocket's `ip_header` off unless the configuration names one. Rocket's default,
/// `X-Real-IP`, takes the client's address from a header any client can send, so the access log
/// would record whatever address a client claims; only behind a proxy that sets the header (the
/// edge, deploy/haproxy/haproxy.cfg) may it be trusted.
pub fn without_trusted_ip_header(figment: Figment) -> Figment {
    let key = rocket::Config::IP_HEADER;
    match figment.find_metadata(key) {
        Some(set) if set.name != "rocket::Config::default()" => figment,
        _ => figment.merge((key, false)),
    }
}

/// `figment` with the pool's URL replaced by `database_url` when there is one.
pub fn with_database_url(figment: Figment, database_url: Option<String>) -> Figment {
    match database_url {
        Some(url) => figment.merge((pool_key("url"), url)),
        None => figment,
    }
}

/// rocket_sync_db_pools' `Config::figment` for the pool, from `figment` rather than from a built
/// Rocket: the keys under `databases.students`, with its defaults (a 5 s timeout, and 4
/// connections per worker).
fn pool_figment(figment: &Figment) -> Figment {
    let pool_size = (figment.extract_inner::<u32>(rocket::Config::WORKERS))
        .map(|workers| workers * 4)
        .ok();
    let pool = (figment.clone())
        .focus(pool_key("").trim_end_matches('.'))
        .join(Serialized::default("timeout", 5));
    match pool_size {
        Some(pool_size) => pool.join(Serialized::default("pool_size", pool_size)),
        None => pool,
    }
}

/// Everything the service and its subcommands are configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rocket's own keys, as Rocket reads them (Rocket reads them again when it ignites).
    pub rocket: rocket::Config,
    pub service: ServiceSettings,
    pub pool: PoolSettings,
}

/// This service's own keys, at the top level of `Rocket.toml` or as `ROCKET_<KEY>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", default)]
pub struct ServiceSettings {
    /// Apply pending migrations at start, post-deploy ones included. Deployments that migrate in
    /// separate steps (`students-api migrate run --skip-post-deploy` before a rollout, `migrate
    /// run` after it), as every fleet must, turn this off.
    pub migrate_on_start: bool,
    /// How long to wait for another process's migration to finish before giving up.
    pub migration_lock_timeout: Seconds,
    /// How long each attempt of a transactional migration waits for a table lock
    /// (`lock_timeout`) before it is rolled back and tried again. Every request that needs the
    /// table queues behind a waiting `ALTER`, so this bounds how long traffic stalls.
    pub migration_lock_wait: Seconds,
    /// How long a migration keeps retrying its lock waits before it fails; also the bound on a
    /// non-transactional migration's one wait (`CREATE INDEX CONCURRENTLY`).
    pub migration_lock_budget: Seconds,
    /// Milliseconds between two batches of a batched data migration: the rows one batch locked
    /// are free again, and requests that waited for them run.
    pub backfill_pause_ms: u64,
    /// The longest one batch of a batched data migration may run (`statement_timeout`); a batch
    /// that needs longer is too big, and fails rather than hold its row locks.
    pub backfill_statement_timeout: Seconds,
    /// How long to keep retrying, at start, a database that does not answer yet (it is often
    /// still starting when the service does) before exiting with an error.
    pub database_wait: Seconds,
    /// Between SIGTERM and closing the listener: `/ready` answers 503 while every request is
    /// still served, so a load balancer polling `/ready` stops sending first.
    pub shutdown_drain: Seconds,
    /// How each request is logged.
    pub access_log: AccessLogFormat,
    /// Whether the request pool's connections keep diesel's prepared statements (named, cached
    /// per connection). The start-up's own connection never keeps them, since it may come
    /// through the same URL; the `migrate` subcommands' direct connection always does.
    pub prepared_statements: PreparedStatements,
    /// Whether students can be read without a token. Writes always need one of scope
    /// `students`, and `/metrics` one of either scope; off, reads need a `students` one too.
    pub public_reads: bool,
}

/// What the migration engine waits for, as these settings say.
impl From<&ServiceSettings> for Waits {
    fn from(service: &ServiceSettings) -> Self {
        Waits {
            migration_lock: service.migration_lock_timeout.into(),
            table_lock: service.migration_lock_wait.into(),
            budget: service.migration_lock_budget.into(),
            batch_pause: Duration::from_millis(service.backfill_pause_ms),
            batch_statement: service.backfill_statement_timeout.into(),
        }
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            migrate_on_start: true,
            migration_lock_timeout: Seconds(300),
            migration_lock_wait: Seconds(1),
            migration_lock_budget: Seconds(60),
            backfill_pause_ms: 50,
            backfill_statement_timeout: Seconds(10),
            database_wait: Seconds(30),
            shutdown_drain: Seconds(0),
            access_log: AccessLogFormat::Text,
            prepared_statements: PreparedStatements::Auto,
            public_reads: true,
        }
    }
}

/// The request pool: rocket_sync_db_pools' configuration of it and what this service adds.
/// (`Debug` leaves out the URL's password: see [`redacted`].)
#[derive(Clone, PartialEq)]
pub struct PoolSettings {
    /// `url`, `pool_size` and `timeout` (seconds a request waits for a connection), with
    /// rocket_sync_db_pools' defaults.
    pub config: rocket_sync_db_pools::Config,
    /// Connections opened at start; the pool grows to `pool_size` under load. Opening every one
    /// up front would add each one's authentication to the start.
    pub min_idle: u32,
}

impl fmt::Debug for PoolSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSettings")
            .field("url", &redacted(&self.config.url))
            .field("pool_size", &self.config.pool_size)
            .field("timeout", &self.config.timeout)
            .field("min_idle", &self.min_idle)
            .finish()
    }
}

/// A database URL with its password, if it has one, as `***`: what may reach a log or a panic
/// message.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

impl PoolSettings {
    const DEFAULT_MIN_IDLE: u32 = 1;

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout.into())
    }
}

/// A number of seconds, as the configuration writes durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", transparent)]
pub struct Seconds(pub u64);

impl From<Seconds> for Duration {
    fn from(Seconds(seconds): Seconds) -> Self {
        Duration::from_secs(seconds)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// How each request is logged, at `info`: `access_log` in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(crate = "rocket::serde", rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// One line: method, path and query, status, and time to the response.
    #[default]
    Text,
    /// One JSON object, with a request id: the client's `X-Request-Id` when it sent a usable one,
    /// a new UUID otherwise; either way echoed in the response's `X-Request-Id`.
    Json,
}

/// `prepared_statements`: whether the request pool keeps diesel's prepared statements.
///
/// diesel names a connection's statements `__diesel_stmt_0`, `__diesel_stmt_1`, ... in the order
/// it first runs them, so every connection uses the same names for different queries. Behind a
/// transaction pooler that does not carry prepared statements (PgBouncer before 1.21, or without
/// `max_prepared_statements`), a name one client prepared can be run by another, and a query
/// other than the one asked for runs: wrong answers, not only errors. No question to the server
/// tells such a pooler from one that carries statements, so `auto` keeps them only where none
/// can be in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PreparedStatements {
    /// Kept on the connections whose server says it was reached at an address and port the URL
    /// names (nothing in between); off on any other (a pooler, a TCP proxy, NAT, a Unix socket).
    #[default]
    Auto,
    /// Kept: direct connections, and poolers that carry them (PgBouncer 1.21 or later with
    /// `max_prepared_statements` above 0) or pass sessions through whole (session pooling, TCP
    /// proxies such as HAProxy).
    On,
    /// Never kept: diesel sends every query unnamed, parsed and run in one round trip.
    Off,
}

impl<'de> Deserialize<'de> for PreparedStatements {
    fn deserialize<D: rocket::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl rocket::serde::de::Visitor<'_> for Visitor {
            type Value = PreparedStatements;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }

            fn visit_bool<E>(self, on: bool) -> Result<PreparedStatements, E> {
                Ok(match on {
                    true => PreparedStatements::On,
                    false => PreparedStatements::Off,
                })
            }

            fn visit_str<E: rocket::serde::de::Error>(
                self,
                text: &str,
            ) -> Result<PreparedStatements, E> {
                match text {
                    "auto" => Ok(PreparedStatements::Auto),
                    "true" => Ok(PreparedStatements::On),
                    "false" => Ok(PreparedStatements::Off),
                    _ => Err(E::invalid_value(
                        rocket::serde::de::Unexpected::Str(text),
                        &self,
                    )),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// An invalid setting, said in one line that names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {key}: {problem}")]
pub struct SettingsError {
    pub key: String,
    pub problem: String,
}

impl SettingsError {
    /// `err` from extracting the keys under `prefix` (`""` for the top level).
    fn from_figment(prefix: &str, err: figment::Error) -> Self {
        let key = match err.path.join(".") {
            path if path.is_empty() => prefix.trim_end_matches('.').to_owned(),
            path => format!("{prefix}{path}"),
        };
        let top = key
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut problem = err.kind.to_string();
        // Where the value came from: the variable's own name as the user wrote it, or the file.
        // Values set in code (tests) have neither.
        let from = err.metadata.as_ref().and_then(|metadata| {
            match &metadata.source {
                // A key is set by the variable named after its first part (`ROCKET_DATABASES`
                // for `databases.students.url`), with the prefix figment names in backquotes.
                _ if metadata.name.contains("environment") => {
                    let prefix = metadata.name.split('`').nth(1).unwrap_or_default();
                    Some(format!("{prefix}{top}"))
                }
                Some(source) => Some(source.to_string()),
                None => None,
            }
        });
        if let Some(from) = from {
            problem += &format!(" (from {from})");
        }
        SettingsError { key, problem }
    }
}

impl Settings {
    /// Every key `figment` sets, read once: Rocket's own as Rocket reads them, the pool's as
    /// rocket_sync_db_pools does, and this service's. The binary, its subcommands and the tests
    /// read them here and pass them on; nothing reads them again.
    pub fn from_figment(figment: Figment) -> Result<Settings, SettingsError> {
        let rocket_config = rocket::Config::try_from(&figment)
            .map_err(|err| SettingsError::from_figment("", err))?;
        let service: ServiceSettings =
            (figment.extract()).map_err(|err| SettingsError::from_figment("", err))?;
        let pool = pool_figment(&figment).join(("min_idle", PoolSettings::DEFAULT_MIN_IDLE));
        let prefix = pool_key("");
        let invalid = |err| SettingsError::from_figment(&prefix, err);
        let pool = PoolSettings {
            config: pool.extract().map_err(invalid)?,
            min_idle: pool.extract_inner("min_idle").map_err(invalid)?,
        };
        // r2d2 panics on either pool key being 0; a `lock_timeout` or `statement_timeout` of 0
        // waits for ever.
        for (key, value) in [
            (pool_key("pool_size"), pool.config.pool_size.into()),
            (pool_key("timeout"), pool.config.timeout.into()),
            ("migration_lock_wait".into(), service.migration_lock_wait.0),
            (
                "backfill_statement_timeout".into(),
                service.backfill_statement_timeout.0,
            ),
        ] {
            if value == 0 {
                return Err(SettingsError {
                    key,
                    problem: "0; it must be at least 1".to_owned(),
                });
            }
        }
        Ok(Settings {
            rocket: rocket_config,
            service,
            pool,
        })
    }

    /// The pool's database URL: what the service and the `migrate` subcommands connect to.
    pub fn database_url(&self) -> &str {
        &self.pool.config.url
    }

    /// Where the service listens: Rocket's `address` and `port`.
    pub fn listen_address(&self) -> SocketAddr {
        SocketAddr::new(self.rocket.address, self.rocket.port)
    }
}

/// Fails, saying what to change, when the service could not listen on `address`. Rocket binds
/// only after ignition, which is after migrating: a port already taken would stop the start once
/// the schema had changed, with a message that names no setting. Binding once here fails first.
pub fn check_can_listen(address: SocketAddr) -> Result<(), ListenError> {
    match TcpListener::bind(address) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AddrInUse => Err(ListenError::InUse(address)),
        Err(err) => Err(ListenError::Other(address, err)),
    }
}

/// Why the service cannot listen where it is configured to.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "port {} on {} is already in use (another copy of this service?): stop what listens \
         there, or choose another port with ROCKET_PORT or `port` in Rocket.toml",
        .0.port(),
        .0.ip()
    )]
    InUse(SocketAddr),
    #[error(
        "cannot listen on {0}: {1}; choose another with ROCKET_ADDRESS and ROCKET_PORT, or \
         `address` and `port` in Rocket.toml"
    )]
    Other(SocketAddr, #[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};

    /// Rocket's defaults under the shipped `Rocket.toml`, as `rocket::Config::figment` reads it.
    fn shipped_rocket_toml() -> Figment {
        Figment::from(rocket::Config::default())
            .merge(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")).nested())
    }

    fn settings(figment: Figment) -> Result<Settings, SettingsError> {
        Settings::from_figment(figment)
    }

    #[test]
    fn debug_output_never_shows_the_database_password() {
        let url = "postgres://someone:s3cret@db.example:5432/students".to_owned();
        let figment = with_database_url(shipped_rocket_toml(), Some(url));
        let shown = format!("{:?}", settings(figment).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://someone:***@db.example:5432/students"),
            "{shown}"
        );
        assert_eq!(
            redacted("postgres://db.example/students"),
            "postgres://db.example/students"
        );
    }

    #[test]
    fn the_engines_default_waits_are_the_settings_defaults() {
        assert_eq!(Waits::from(&ServiceSettings::default()), Waits::default());
    }

    #[test]
    fn database_url_from_the_environment_wins_over_rocket_toml() {
        let url = "postgres://someone:secret@db.example:5432/elsewhere".to_owned();
        let figment = with_database_url(shipped_rocket_toml(), Some(url.clone()));
        assert_eq!(settings(figment).unwrap().database_url(), url);
    }

    #[test]
    fn without_database_url_rocket_toml_points_at_the_compose_database_on_port_5439() {
        let settings = settings(with_database_url(shipped_rocket_toml(), None)).unwrap();
        assert_eq!(
            settings.database_url(),
            "postgres://user1:password1@127.0.0.1:5439/database1"
        );
        assert_eq!(settings.listen_address().port(), 8089);
    }

    #[test]
    fn rocket_toml_states_the_defaults_the_code_has() {
        let shipped = settings(shipped_rocket_toml()).unwrap();
        assert_eq!(shipped.service, ServiceSettings::default());
        assert_eq!(shipped.pool.min_idle, PoolSettings::DEFAULT_MIN_IDLE);
        assert_eq!(
            shipped.rocket.max_blocking,
            shipped.pool.config.pool_size as usize
        );
    }

    #[test]
    fn every_default_holds_when_nothing_is_configured() {
        let bare = Figment::from(rocket::Config::debug_default())
            .merge((pool_key("url"), "postgres://localhost/x"));
        let settings = settings(bare).unwrap();
        assert_eq!(settings.service, ServiceSettings::default());
        assert_eq!(settings.pool.min_idle, 1);
        assert_eq!(
            settings.pool.config.timeout, 5,
            "rocket_sync_db_pools' default"
        );
    }

    #[test]
    fn an_invalid_value_is_refused_naming_the_key_and_the_value() {
        let base = || {
            Figment::from(rocket::Config::debug_default())
                .merge((pool_key("url"), "postgres://localhost/x"))
        };
        let cases: [(&str, Figment, &str); 6] = [
            (
                "migration_lock_timeout",
                base().merge(("migration_lock_timeout", "soon")),
                "\"soon\"",
            ),
            ("access_log", base().merge(("access_log", "xml")), "`xml`"),
            ("max_blocking", base().merge(("max_blocking", -1)), "-1"),
            (
                "databases.students.min_idle",
                base().merge((pool_key("min_idle"), "some")),
                "\"some\"",
            ),
            (
                "databases.students.pool_size",
                base().merge((pool_key("pool_size"), 0)),
                "0",
            ),
            ("log_level", base().merge(("log_level", "loud")), "\"loud\""),
        ];
        for (key, figment, value) in cases {
            let err = settings(figment).expect_err(key);
            assert_eq!(err.key, key, "{err}");
            let line = err.to_string();
            assert!(
                line.starts_with(&format!("invalid setting {key}: ")),
                "{line}"
            );
            assert!(line.contains(value), "{key}: the value is named: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    #[test]
    fn the_client_address_header_is_trusted_only_when_the_configuration_names_one() {
        let ip_header = |figment: Figment| {
            let config = rocket::Config::try_from(without_trusted_ip_header(figment)).unwrap();
            config.ip_header.map(|header| header.to_string())
        };
        assert_eq!(ip_header(shipped_rocket_toml()), None);
        assert_eq!(ip_header(Figment::from(rocket::Config::default())), None);
        let named = shipped_rocket_toml().merge(("ip_header", "X-Real-IP"));
        assert_eq!(ip_header(named), Some("X-Real-IP".to_owned()));
    }

    #[test]
    fn a_taken_port_is_named_with_the_setting_that_changes_it() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let message = check_can_listen(taken.local_addr().unwrap())
            .unwrap_err()
            .to_string();
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
