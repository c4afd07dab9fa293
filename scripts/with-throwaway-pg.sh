#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a throwaway PostgreSQL server: started in a fresh
# temporary folder on a free loopback port, then stopped and deleted when the command ends,
# fails or is interrupted. With DATABASE_URL already set, runs the command against that server.
#
#   scripts/with-throwaway-pg.sh cargo test
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

workdir=$(mktemp -d "${TMPDIR:-/tmp}/students-pg.XXXXXX")
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
echo "Throwaway PostgreSQL on 127.0.0.1:$PG_PORT (removed afterwards)" >&2
"$@"
