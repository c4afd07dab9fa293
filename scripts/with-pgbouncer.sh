#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing through a PgBouncer of its own, in transaction pooling
# mode, in front of the server DATABASE_URL names (same role, password and database), and with
# ROCKET_PREPARED_STATEMENTS=false and ROCKET_MIGRATE_ON_START=false, as a replica behind a pooler
# runs; PgBouncer stops with the command. The settings are those the tests use (README, "Behind
# PgBouncer"). Needs Debian's pgbouncer.
#
#   DATABASE_URL=postgres://user1:password1@127.0.0.1:5439/database1 \
#     scripts/with-pgbouncer.sh target/release/students-api
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/pg-lib.sh"

[ $# -gt 0 ] || die "usage: $0 COMMAND [ARGS...]"
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL server to pool}"
bouncer_bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$bouncer_bin" ] || die "pgbouncer is missing: sudo apt-get install pgbouncer"

# postgres://user:password@host:port/database?params
rest=${DATABASE_URL#*://}
credentials=${rest%%@*}
user=${credentials%%:*}
password=${credentials#*:}
[ "$password" != "$credentials" ] || password=
address=${rest#*@}
address=${address%%/*}
host=${address%%:*}
port=${address##*:}
[ "$port" != "$address" ] || port=5432
database=${rest#*/}
database=${database%%\?*}

work=$(mktemp -d "${TMPDIR:-/tmp}/students-pgbouncer.XXXXXX")
chmod 755 "$work"
bouncer=
command_pid=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_process "$command_pid"
  stop_process "$bouncer"
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

listen=$(free_port)
printf '"%s" "%s"\n' "$user" "$password" >"$work/userlist.txt"
cat >"$work/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-2}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
INI
chmod 644 "$work/userlist.txt" "$work/pgbouncer.ini"

# As the account PostgreSQL runs as when this is root (PgBouncer refuses root); setpriv execs, so
# $bouncer is PgBouncer's own pid.
pg_pick_user
if [ "$(id -u)" -eq 0 ]; then
  setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups \
    "$bouncer_bin" "$work/pgbouncer.ini" >"$work/pgbouncer.log" 2>&1 &
else
  "$bouncer_bin" "$work/pgbouncer.ini" >"$work/pgbouncer.log" 2>&1 &
fi
bouncer=$!
for _ in $(seq 1 200); do
  port_in_use "$listen" && break
  kill -0 "$bouncer" 2>/dev/null || { cat "$work/pgbouncer.log" >&2; die "pgbouncer did not start"; }
  sleep 0.05
done
port_in_use "$listen" || die "pgbouncer did not listen on 127.0.0.1:$listen"

DATABASE_URL="postgres://$credentials@127.0.0.1:$listen/$database" \
  ROCKET_PREPARED_STATEMENTS=false ROCKET_MIGRATE_ON_START=false "$@" &
command_pid=$!
wait "$command_pid"
