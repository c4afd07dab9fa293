#!/usr/bin/env bash
# Fault tests (tests/harness/faults.py): the service against a PostgreSQL of this script's own,
# which the tests stop, restart, lock and starve: restart under load, start while the database
# is down, pool exhaustion, SIGTERM under load, and a soak of reads and writes.
#
#   scripts/fault-tests.sh                      # every scenario; the soak lasts 60 s
#   SOAK_SECONDS=10 scripts/fault-tests.sh soak pool_exhausted
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

command -v python3 >/dev/null || die "python3 is needed for the fault tests"
command -v psql >/dev/null || die "psql is needed: sudo apt-get install postgresql-client"
pg_find_bin
pg_pick_user

cargo build --locked --quiet --bin students-api

work=$(mktemp -d "${TMPDIR:-/tmp}/students-faults.XXXXXX")
chmod 755 "$work"
data=$work/data
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -f "$data/postmaster.pid" ]; then pg_stop_cluster "$data" immediate || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

password=faults
pg_prepare_dir "$data"
pg_init_cluster "$data" postgres "$password"
pg_start_on_free_port "$data"
port=$PG_PORT

# The tests stop and start this cluster through this helper, as the server's own user.
cat >"$work/pg" <<HELPER
#!/usr/bin/env bash
set -euo pipefail
. "$root/scripts/pg-lib.sh"
PG_BIN=$PG_BIN
PG_USER=$PG_USER
case "\$1" in
  stop) pg_stop_cluster "$data" fast ;;
  start)
    if pg_as_user "\$PG_BIN/pg_ctl" --pgdata="$data" status >/dev/null 2>&1; then exit 0; fi
    pg_start_cluster "$data" "$port" || { pg_log_tail "$data"; exit 1; }
    ;;
esac
HELPER
chmod +x "$work/pg"

url="postgres://postgres:$password@127.0.0.1:$port"
psql --no-psqlrc -q "$url/postgres" -c "CREATE DATABASE faults"

SERVICE_BIN=$root/target/debug/students-api \
  FAULT_DATABASE_URL=$url/faults \
  PG_STOP="$work/pg stop" \
  PG_START="$work/pg start" \
  python3 tests/harness/faults.py "$@"
