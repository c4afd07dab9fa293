//! Whether a connection reaches PostgreSQL with nothing in between, for
//! `prepared_statements = "auto"` ([`crate::settings::PreparedStatements`]).
//!
//! The server says at which address and port it was reached (`inet_server_addr()`,
//! `inet_server_port()`). When that is an address and port the URL names, the client's TCP
//! connection ends at PostgreSQL itself: no pooler can be in between. Anything else (another port,
//! another address, a Unix socket on the server's side) may be a pooler, so it counts as not
//! direct: a TCP proxy or NAT is then taken for one too, which costs speed, never correctness.

use std::net::{IpAddr, ToSocketAddrs};

use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};

/// Each host and port a database URL has libpq try, or `None` when the URL leaves them to
/// libpq's defaults or says them in a form this does not read (key=value strings; `host`,
/// `hostaddr` or `port` as query parameters; Unix socket folders): then no connection counts as
/// direct.
pub fn targets(url: &str) -> Option<Vec<(String, u16)>> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (authority, query) = match rest.find(['/', '?']) {
        Some(end) => (
            &rest[..end],
            rest[end..].split_once('?').map_or("", |(_, q)| q),
        ),
        None => (rest, ""),
    };
    let overridden = query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        matches!(name, "host" | "hostaddr" | "port")
    });
    if overridden {
        return None;
    }
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    let default_port = match std::env::var("PGPORT") {
        Ok(port) => port.parse().ok()?,
        Err(_) => 5432,
    };
    hosts
        .split(',')
        .map(|host| {
            let (name, port) = match host.strip_prefix('[') {
                // [IPv6]:port
                Some(v6) => {
                    let (name, after) = v6.split_once(']')?;
                    (name, after.strip_prefix(':'))
                }
                None => match host.rsplit_once(':') {
                    Some((name, port)) => (name, Some(port)),
                    None => (host, None),
                },
            };
            // An empty host is libpq's default, a Unix socket; `%2F...` is a socket folder.
            if name.is_empty() || name.starts_with('%') || name.starts_with('/') {
                return None;
            }
            let port = match port {
                Some(port) => port.parse().ok()?,
                None => default_port,
            };
            Some((name.to_owned(), port))
        })
        .collect()
}

#[derive(QueryableByName)]
struct Reached {
    #[diesel(sql_type = Nullable<Text>)]
    addr: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    port: Option<i32>,
}

/// Where the server at the other end of `conn` says it was reached: its address and port, or
/// `None` over a Unix socket.
pub fn reached(conn: &mut PgConnection) -> QueryResult<Option<(IpAddr, u16)>> {
    let reached =
        diesel::sql_query("SELECT host(inet_server_addr()) AS addr, inet_server_port() AS port")
            .get_result::<Reached>(conn)?;
    let (Some(addr), Some(port)) = (reached.addr, reached.port) else {
        return Ok(None);
    };
    let addr = addr.parse::<IpAddr>().ok().map(|addr| addr.to_canonical());
    Ok(addr.zip(u16::try_from(port).ok()))
}

/// Whether `reached` is one of `targets`, each host resolved as libpq resolves it.
pub fn is_direct(reached: Option<(IpAddr, u16)>, targets: Option<&[(String, u16)]>) -> bool {
    let (Some((addr, port)), Some(targets)) = (reached, targets) else {
        return false;
    };
    targets.iter().any(|(host, target_port)| {
        *target_port == port
            && (host.as_str(), port)
                .to_socket_addrs()
                .is_ok_and(|mut found| found.any(|at| at.ip().to_canonical() == addr))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, port: u16) -> (String, u16) {
        (host.to_owned(), port)
    }

    #[test]
    fn the_hosts_and_ports_a_url_names() {
        assert_eq!(
            targets("postgres://u:p@db:5433/students"),
            Some(vec![t("db", 5433)])
        );
        assert_eq!(
            targets("postgresql://u:p%40x@10.0.0.1/students?sslmode=disable"),
            Some(vec![t("10.0.0.1", 5432)])
        );
        assert_eq!(
            targets("postgres://u:p@a:5432,b:6432/s?target_session_attrs=read-write"),
            Some(vec![t("a", 5432), t("b", 6432)])
        );
        assert_eq!(
            targets("postgres://u@[::1]:5439/s"),
            Some(vec![t("::1", 5439)])
        );
        assert_eq!(targets("postgres://db"), Some(vec![t("db", 5432)]));
    }

    #[test]
    fn urls_that_leave_the_server_to_libpq_name_none() {
        for url in [
            "host=db port=5432 dbname=s",
            "postgres:///students",
            "postgres://u@/students?host=/var/run/postgresql",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/students",
            "postgres://u@db/students?hostaddr=10.0.0.1",
            "postgres://u@db/students?port=6432",
            "postgres://u@db:notaport/students",
        ] {
            assert_eq!(targets(url), None, "{url}");
        }
    }

    #[test]
    fn direct_only_at_an_address_and_port_the_url_names() {
        let local = Some((IpAddr::from([127, 0, 0, 1]), 5432));
        let targets = vec![t("127.0.0.1", 5432), t("localhost", 6000)];
        assert!(is_direct(local, Some(&targets)));
        assert!(!is_direct(
            Some((IpAddr::from([127, 0, 0, 1]), 6432)),
            Some(&targets)
        ));
        assert!(!is_direct(
            Some((IpAddr::from([10, 0, 0, 9]), 5432)),
            Some(&targets)
        ));
        assert!(!is_direct(None, Some(&targets)), "a Unix socket");
        assert!(!is_direct(local, None), "a URL this does not read");
        let mapped = "::ffff:127.0.0.1".parse::<IpAddr>().unwrap().to_canonical();
        assert!(is_direct(Some((mapped, 5432)), Some(&targets)));
    }
}
