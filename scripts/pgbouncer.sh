#!/usr/bin/env bash
# Runs PgBouncer in the foreground, in transaction pooling mode on 127.0.0.1:LISTEN_PORT, in front
# of the server SERVER_URL names: every database on it, as SERVER_URL's role and password. Its ini
# and auth file are written to DIR. These are the settings the tests use and docs/operations.md,
# "Behind PgBouncer" shows. As root it runs as the account PostgreSQL runs as (PgBouncer refuses
# root). It execs, so the caller's child pid is PgBouncer's own, to stop by.
#
#   scripts/pgbouncer.sh SERVER_URL LISTEN_PORT DIR
#
# PGBOUNCER_POOL_SIZE: server connections per database and role (default 2, fewer than the
# service's pool, so that one client's transactions land on several server connections).
# PGBOUNCER_ROOT: a Debian 13 root (scripts/debian13-root.sh) whose PgBouncer 1.24 runs instead
# of this machine's, through chroot, with max_prepared_statements = 200 (1.18 refuses the key);
# DIR is then made inside the root, where PgBouncer can read it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/pg-lib.sh"

[ $# -eq 3 ] || die "usage: $0 SERVER_URL LISTEN_PORT DIR"
# Which PostgreSQL it pools does not matter here: this machine's accounts run this machine's PgBouncer.
unset PG_ROOT
url=$1 listen=$2 dir=$3
chrooted=${PGBOUNCER_ROOT:-}
extra=
if [ -n "$chrooted" ]; then
  [ -x "$chrooted/usr/sbin/pgbouncer" ] || die "no PgBouncer in $chrooted: run scripts/debian13-root.sh"
  [ "$(id -u)" -eq 0 ] || die "PGBOUNCER_ROOT needs root (chroot)"
  # Paths as PgBouncer sees them, inside the root.
  inside=/tmp/$(basename "$dir")
  dir=$chrooted$inside
  extra="max_prepared_statements = 200"
else
  bouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  [ -x "$bouncer" ] || die "pgbouncer is missing: sudo apt-get install pgbouncer"
  inside=$dir
fi

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
auth_file = $inside/userlist.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-2}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
$extra
INI
# Readable by the account it runs as; the password is the caller's test server's.
chmod 755 "$dir"
chmod 644 "$dir/userlist.txt" "$dir/pgbouncer.ini"

if [ -n "$chrooted" ]; then
  # The root's own postgres account, whose ids differ from this machine's. chroot execs too.
  exec chroot --userspec="$(chroot "$chrooted" id -u postgres):$(chroot "$chrooted" id -g postgres)" \
    "$chrooted" /usr/sbin/pgbouncer "$inside/pgbouncer.ini"
fi
if [ "$(id -u)" -eq 0 ]; then
  pg_pick_user
  exec setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups \
    "$bouncer" "$dir/pgbouncer.ini"
fi
exec "$bouncer" "$dir/pgbouncer.ini"
