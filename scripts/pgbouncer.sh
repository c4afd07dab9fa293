#!/usr/bin/env bash
# Runs Debian's PgBouncer in the foreground, in transaction pooling mode on 127.0.0.1:LISTEN_PORT,
# in front of the server SERVER_URL names: every database on it, as SERVER_URL's role and
# password. Its ini and auth file are written to DIR. These are the settings the tests use and
# docs/operations.md, "Behind PgBouncer" shows. As root it runs as the account PostgreSQL runs as (PgBouncer
# refuses root). It execs, so the caller's child pid is PgBouncer's own, to stop by.
#
#   scripts/pgbouncer.sh SERVER_URL LISTEN_PORT DIR
#
# PGBOUNCER_POOL_SIZE: server connections per database and role (default 2, fewer than the
# service's pool, so that one client's transactions land on several server connections).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/pg-lib.sh"

[ $# -eq 3 ] || die "usage: $0 SERVER_URL LISTEN_PORT DIR"
url=$1 listen=$2 dir=$3
bouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$bouncer" ] || die "pgbouncer is missing: sudo apt-get install pgbouncer"

pg_parse_url "$url"
mkdir -p "$dir"
printf '"%s" "%s"\n' "$PG_URL_USER" "$PG_URL_PASSWORD" >"$dir/userlist.txt"
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$PG_URL_HOST port=$PG_URL_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-2}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
INI
# Readable by the account it runs as; the password is the caller's test server's.
chmod 755 "$dir"
chmod 644 "$dir/userlist.txt" "$dir/pgbouncer.ini"

if [ "$(id -u)" -eq 0 ]; then
  pg_pick_user
  exec setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups \
    "$bouncer" "$dir/pgbouncer.ini"
fi
exec "$bouncer" "$dir/pgbouncer.ini"
