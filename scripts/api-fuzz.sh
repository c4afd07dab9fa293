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

# Every request with a token, so the writes reach validation; schemathesis' ignored_auth check
# sends them without it too, and requires the 401 the document promises.
service_on_own_database "api_fuzz_$$"

# Every write with a valid Idempotency-Key gets a fresh one (tests/harness/fuzz_hooks.py).
PYTHONPATH=tests/harness SCHEMATHESIS_HOOKS=fuzz_hooks \
  "$venv/bin/schemathesis" run "http://127.0.0.1:$service_port/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $service_token" \
  --max-examples "$MAX_EXAMPLES" \
  --generation-database none \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir target/schemathesis-report
