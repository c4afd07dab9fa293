//! A real PgBouncer in front of a test database, in transaction pooling mode with fewer server
//! connections than the service's pool: what the fleet topology puts between the request pool and
//! PostgreSQL. Debian 12's (1.18), or with `PGBOUNCER_ROOT` Debian 13's (1.24, through chroot,
//! with `max_prepared_statements`: scripts/debian13-root.sh).

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TestDb;
use crate::process::free_port;

/// Server connections PgBouncer opens to PostgreSQL per database and user: fewer than the
/// service's pool, so that transactions of one client connection land on several server ones.
pub const SERVER_CONNECTIONS: u32 = 2;

/// Whether the PgBouncer these tests start carries prepared statements through transaction
/// pooling: 1.24 from `PGBOUNCER_ROOT` does, with `max_prepared_statements`; Debian 12's 1.18
/// cannot.
pub fn carries_statements() -> bool {
    std::env::var_os("PGBOUNCER_ROOT").is_some_and(|root| !root.is_empty())
}

/// PgBouncer on a free loopback port, stopped by its own pid when dropped (the script execs it);
/// its configuration and log in a folder of its own, removed with it.
pub struct PgBouncer {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    server_url: String,
    url: String,
}

impl PgBouncer {
    /// Starts one in front of `db`'s server, with `db`'s role (scripts/pgbouncer.sh writes its
    /// configuration and runs it, as an unprivileged account when this is root).
    pub fn start(db: &TestDb) -> PgBouncer {
        let port = free_port();
        let name = url::Url::parse(db.url())
            .expect("a database URL")
            .path()
            .replace('/', "");
        let dir = std::env::temp_dir().join(format!("students-pgbouncer-{name}"));
        let mut url = url::Url::parse(db.url()).expect("a database URL");
        url.set_port(Some(port)).expect("a port can be set");
        let mut bouncer = PgBouncer {
            child: None,
            dir,
            port,
            server_url: db.url().to_owned(),
            url: url.into(),
        };
        bouncer.resume();
        bouncer
    }

    /// The URL the service connects to: `db`'s, with PgBouncer's port.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills it, as a crashed or restarting pooler goes: every client connection drops.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, and waits until it accepts connections.
    pub fn resume(&mut self) {
        fs::create_dir_all(&self.dir).expect("create PgBouncer's folder");
        let log = fs::File::create(self.dir.join("pgbouncer.log")).expect("create the log");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pgbouncer.sh");
        let child = Command::new(script)
            .args([&self.server_url, &self.port.to_string()])
            .arg(&self.dir)
            .env("PGBOUNCER_POOL_SIZE", SERVER_CONNECTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn();
        self.child = Some(child.expect("start scripts/pgbouncer.sh"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "pgbouncer did not start ({exited:?}): {}",
                fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
        // scripts/pgbouncer.sh writes the configuration inside the root when there is one.
        if let (Some(root), Some(name)) = (std::env::var_os("PGBOUNCER_ROOT"), self.dir.file_name())
        {
            let _ = fs::remove_dir_all(PathBuf::from(root).join("tmp").join(name));
        }
    }
}
