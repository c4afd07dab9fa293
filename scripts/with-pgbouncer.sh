#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing through a PgBouncer of its own (scripts/pgbouncer.sh:
# transaction pooling, in front of the server DATABASE_URL names, same role, password and
# database), and with ROCKET_MIGRATE_ON_START=false and ROCKET_PREPARED_STATEMENTS=false (unless
# set), as a replica behind a pooler runs; PgBouncer stops with the command. PGBOUNCER_ROOT
# (scripts/debian13-root.sh) runs Debian 13's PgBouncer 1.24, which carries prepared statements:
# set ROCKET_PREPARED_STATEMENTS=true with it.
#
#   DATABASE_URL=postgres://user1:password1@127.0.0.1:5439/database1 \
#     scripts/with-pgbouncer.sh target/release/students-api
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/pg-lib.sh"

[ $# -gt 0 ] || die "usage: $0 COMMAND [ARGS...]"
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL server to pool}"

work=$(mktemp -d "${TMPDIR:-/tmp}/students-pgbouncer.XXXXXX")
bouncer=
command_pid=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_process "$command_pid"
  stop_process "$bouncer"
  rm -rf "$work" "${PGBOUNCER_ROOT:+$PGBOUNCER_ROOT/tmp/$(basename "$work")}"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

listen=$(free_port)
"$root/scripts/pgbouncer.sh" "$DATABASE_URL" "$listen" "$work" >"$work/pgbouncer.log" 2>&1 &
bouncer=$!
for _ in $(seq 1 200); do
  port_in_use "$listen" && break
  kill -0 "$bouncer" 2>/dev/null || { cat "$work/pgbouncer.log" >&2; die "pgbouncer did not start"; }
  sleep 0.05
done
port_in_use "$listen" || die "pgbouncer did not listen on 127.0.0.1:$listen"

pg_parse_url "$DATABASE_URL"
DATABASE_URL="postgres://$PG_URL_USER:$PG_URL_PASSWORD@127.0.0.1:$listen/$PG_URL_PATH" \
  ROCKET_PREPARED_STATEMENTS=${ROCKET_PREPARED_STATEMENTS:-false} ROCKET_MIGRATE_ON_START=false "$@" &
command_pid=$!
wait "$command_pid"
