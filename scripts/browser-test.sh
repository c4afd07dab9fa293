#!/usr/bin/env bash
# The README's /docs link in a real browser (tests/harness/browser.py): Debian's Chromium, driven
# by Playwright for Python from PyPI (its own browser download is never used), against the
# service on a database of its own (created on the server DATABASE_URL names, dropped after).
# Screenshots go to target/browser/.
#
#   scripts/with-throwaway-pg.sh scripts/browser-test.sh            # as CI runs it
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

: "${DATABASE_URL:?set DATABASE_URL to a server where this role may create databases}"
PLAYWRIGHT_VERSION=1.64.1
require chromium psql curl

venv=target/playwright-venv
python_tool "$venv" "playwright==$PLAYWRIGHT_VERSION"

cargo build --locked --quiet --bin students-api

name="browser_$$"
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

for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
  kill -0 "$service" 2>/dev/null || die "the service exited before it was ready"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || die "the service did not become ready"
token=$(DATABASE_URL=$db_url target/debug/students-api token create browser | tail -n 1)

rm -rf target/browser
"$venv/bin/python" tests/harness/browser.py "http://127.0.0.1:$port" "$token" target/browser
