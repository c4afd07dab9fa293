#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL (see with-throwaway-pg.sh), or against
# the server DATABASE_URL names. Every test creates and drops a database of its own there.
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh --test migrations`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
exec scripts/with-throwaway-pg.sh cargo test --locked "$@"
