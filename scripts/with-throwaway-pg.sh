#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a throwaway PostgreSQL server: started in a fresh
# temporary folder on a free loopback port, then stopped and deleted when the command ends,
# fails or is interrupted. With DATABASE_URL already set, runs the command against that server.
#
#   scripts/with-throwaway-pg.sh cargo test
#   PG_ROOT=$(scripts/debian13-root.sh) scripts/with-throwaway-pg.sh cargo test   # PostgreSQL 17
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/pg-lib.sh"

[ $# -gt 0 ] || die "usage: $0 COMMAND [ARGS...]"

if [ -n "${DATABASE_URL:-}" ]; then
  echo "Using the PostgreSQL server DATABASE_URL names" >&2
  exec "$@"
fi

pg_find_bin
pg_pick_user

parent=${TMPDIR:-/tmp}
[ -z "${PG_ROOT:-}" ] || parent=$PG_ROOT/tmp # where the server that runs there can reach it
workdir=$(mktemp -d "$parent/students-pg.XXXXXX")
chmod 755 "$workdir"
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -f "$workdir/data/postmaster.pid" ]; then
    pg_stop_cluster "$workdir/data" immediate || true
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

password=throwaway
pg_prepare_dir "$workdir/data"
pg_init_cluster "$workdir/data" postgres "$password"

pg_start_on_free_port "$workdir/data"

export DATABASE_URL="postgres://postgres:$password@127.0.0.1:$PG_PORT/postgres"
version=$(pg_as_user "$PG_BIN/postgres" --version 2>/dev/null | awk '{print $3}' || true)
echo "Throwaway PostgreSQL ${version:-} on 127.0.0.1:$PG_PORT (removed afterwards)" >&2
"$@"
