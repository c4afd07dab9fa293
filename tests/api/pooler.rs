//! A real PgBouncer (Debian's `pgbouncer` package) in front of a test database, in transaction
//! pooling mode with fewer server connections than the service's pool: what the fleet topology
//! puts between the request pool and PostgreSQL.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TestDb;
use crate::process::free_port;

/// Server connections PgBouncer opens to PostgreSQL per database and user: fewer than the
/// service's pool, so that transactions of one client connection land on several server ones.
pub const SERVER_CONNECTIONS: u32 = 2;

/// PgBouncer on a free loopback port, stopped by its own pid when dropped; its configuration and
/// log in a folder of its own, removed with it.
pub struct PgBouncer {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    url: String,
}

impl PgBouncer {
    /// Starts one in front of `db`, as an unprivileged account when run as root (PgBouncer
    /// refuses root), with an auth file for `db`'s role.
    pub fn start(db: &TestDb) -> PgBouncer {
        let server = url::Url::parse(db.url()).expect("a database URL");
        let database = server.path().trim_start_matches('/').to_owned();
        let (user, password) = (server.username(), server.password().unwrap_or_default());
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("students-pgbouncer-{database}"));
        fs::create_dir_all(&dir).expect("create PgBouncer's folder");
        let auth = dir.join("userlist.txt");
        fs::write(&auth, format!("\"{user}\" \"{password}\"\n")).expect("write the auth file");
        let ini = dir.join("pgbouncer.ini");
        fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {database} = host={host} port={server_port} dbname={database}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = scram-sha-256\n\
                 auth_file = {auth}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {SERVER_CONNECTIONS}\n\
                 max_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits\n",
                host = server.host_str().unwrap_or("127.0.0.1"),
                server_port = server.port().unwrap_or(5432),
                auth = auth.display(),
            ),
        )
        .expect("write pgbouncer.ini");
        // Readable by the account it runs as; the password is a test server's.
        for path in [&dir, &auth, &ini] {
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            set_mode(path, mode);
        }
        let mut url = server.clone();
        url.set_port(Some(port)).expect("a port can be set");
        let mut bouncer = PgBouncer {
            child: None,
            dir,
            port,
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
        let log = fs::File::create(self.dir.join("pgbouncer.log")).expect("create the log");
        let mut command = as_unprivileged(&pgbouncer_binary());
        command
            .arg(self.dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        self.child = Some(command.spawn().expect("start pgbouncer"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "pgbouncer did not start ({exited:?}): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it logged since it last started.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Debian installs it in /usr/sbin, which is not on every account's PATH.
fn pgbouncer_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|binary| binary.is_file());
    found.expect(
        "PgBouncer is needed for these tests: sudo apt-get install pgbouncer (Debian, Ubuntu)",
    )
}

/// `binary` run as the account PostgreSQL runs as when this is root (as scripts/pg-lib.sh picks
/// it: PG_RUN_AS, else `postgres`, else `nobody`), itself otherwise. setpriv execs, so the child's
/// pid is PgBouncer's own.
fn as_unprivileged(binary: &Path) -> Command {
    let root = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find(|line| line.starts_with("Uid:"))?
                .to_owned();
            Some(line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Command::new(binary);
    }
    let account = std::env::var("PG_RUN_AS").unwrap_or_else(|_| {
        let has_postgres = Command::new("id")
            .arg("postgres")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        match has_postgres {
            true => "postgres".to_owned(),
            false => "nobody".to_owned(),
        }
    });
    let group = Command::new("id")
        .args(["-g", &account])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .expect("the account's group");
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={account}"))
        .arg(format!("--regid={group}"))
        .arg("--init-groups")
        .arg(binary);
    command
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("set permissions");
}
