#!/usr/bin/env bash
# Property-based API tests with schemathesis: every check, against the OpenAPI document of a
# running instance of the service on a database of its own (created on the server DATABASE_URL
# names, dropped afterwards).
#
#   scripts/with-throwaway-pg.sh scripts/api-fuzz.sh            # as CI runs it
#   MAX_EXAMPLES=500 scripts/with-throwaway-pg.sh scripts/api-fuzz.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

: "${DATABASE_URL:?set DATABASE_URL to a server where this role may create databases}"
SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-100}

venv=target/schemathesis-venv
python_tool "$venv" "schemathesis==$SCHEMATHESIS_VERSION"

cargo build --locked --quiet --bin students-api

name="api_fuzz_$$"
admin_url=$DATABASE_URL
admin() { psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$admin_url" -c "$1" >/dev/null; }

service=
cleanup() {
  local status=$?
  stop_process "$service"
  admin "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
  exit "$status"
}
trap cleanup EXIT
admin "CREATE DATABASE $name"

port=$(free_port)

db_url=$(pg_database_url "$admin_url" "$name")
DATABASE_URL=$db_url ROCKET_PORT=$port ROCKET_ADDRESS=127.0.0.1 \
  ROCKET_LOG_LEVEL=critical target/debug/students-api &
service=$!

# The service migrates before it listens; /ready also proves nothing is pending.
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
  kill -0 "$service" 2>/dev/null || die "the service exited before it was ready"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || die "the service did not become ready"
# Every request with a token, so the writes reach validation; schemathesis' ignored_auth check
# sends them without it too, and requires the 401 the document promises.
token=$(DATABASE_URL=$db_url target/debug/students-api token create fuzz | tail -n 1)

"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --max-examples "$MAX_EXAMPLES" \
  --generation-database none \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir target/schemathesis-report
