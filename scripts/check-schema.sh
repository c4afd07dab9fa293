#!/usr/bin/env bash
# Schema drift check: on a database of its own (created on the server DATABASE_URL names, dropped
# afterwards), the diesel CLI applies every migration, reverts and re-applies them all, and
# src/schema.rs must be exactly what `diesel print-schema` prints at each step.
# Needs diesel_cli (PostgreSQL only): cargo install diesel_cli --no-default-features --features postgres
#
#   scripts/with-throwaway-pg.sh scripts/check-schema.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

: "${DATABASE_URL:?set DATABASE_URL to a server where this role may create databases}"
command -v diesel >/dev/null ||
  die "diesel CLI not found; cargo install diesel_cli --no-default-features --features postgres"

name="schema_check_$$"
admin_url=$DATABASE_URL
check_url=$(pg_database_url "$admin_url" "$name")
admin() { psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$admin_url" -c "$1" >/dev/null; }

admin "CREATE DATABASE $name"
trap 'admin "DROP DATABASE IF EXISTS $name WITH (FORCE)"' EXIT

export DATABASE_URL=$check_url
# --locked-schema: fail instead of rewriting src/schema.rs when it would change.
diesel migration run --locked-schema
diesel migration redo --all --locked-schema
diesel print-schema | diff -u src/schema.rs - ||
  die "src/schema.rs differs from 'diesel print-schema'; run 'diesel migration run' and commit the result"
echo "src/schema.rs matches the migrated database" >&2
