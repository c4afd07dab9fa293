#!/usr/bin/env bash
# Runs the service on http://localhost:8089 against the project's PostgreSQL (scripts/db.sh),
# started or reused first. The service applies pending migrations before it serves.
# Extra arguments go to `cargo run`, e.g. `scripts/serve.sh --release`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [ -n "${DATABASE_URL:-}" ]; then
  echo "Using DATABASE_URL from the environment" >&2
else
  scripts/db.sh start
fi
exec cargo run "$@"
