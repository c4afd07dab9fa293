#!/usr/bin/env bash
# `students-api migrate new`, as a developer runs it: on a database of its own (created on the
# server DATABASE_URL names, dropped afterwards) with this project's migrations applied, every
# operation writes its chain into a copy of migrations/; the diesel CLI applies each chain before
# the next one is written (the generator reads the schema it leaves), then reverts and re-applies
# them all. Last, every folder written must pass the migration lint (squawk, the data-change
# check) as written.
#
#   scripts/with-throwaway-pg.sh scripts/check-generator.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

: "${DATABASE_URL:?set DATABASE_URL to a server where this role may create databases}"
command -v diesel >/dev/null ||
  die "diesel CLI not found; cargo install diesel_cli --no-default-features --features postgres"

cargo build --locked --quiet
binary=$root/target/debug/students-api

name="generator_check_$$"
admin_url=$DATABASE_URL
work=$(mktemp -d)
admin() { psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$admin_url" -c "$1" >/dev/null; }
admin "CREATE DATABASE $name"
trap 'admin "DROP DATABASE IF EXISTS $name WITH (FORCE)"; rm -rf "$work"' EXIT
export DATABASE_URL
DATABASE_URL=$(pg_database_url "$admin_url" "$name")

cp -r migrations "$work/migrations"
"$binary" migrate run 2>"$work/migrate-run.log" || { cat "$work/migrate-run.log" >&2; exit 1; }
before=$(ls "$work/migrations")

generate() {
  echo "--- migrate new $*" >&2
  (cd "$work" && "$binary" migrate new "$@" >/dev/null)
  # From $work, where no diesel.toml asks the CLI to rewrite src/schema.rs.
  (cd "$work" && diesel migration run --migration-dir migrations >/dev/null)
}
generate add-column student nickname text
generate add-column student credits integer --not-null --default 0
generate add-column student graduates_on date --not-null --backfill "enrolled_on + 1460"
generate add-index student last_name first_name
generate set-not-null student email --backfill "'student' || id || '@example.com'"
generate add-unique student email
generate add-column student mentor_id integer
generate add-foreign-key student mentor_id --references "student(id)" --on-delete "SET NULL"
generate add-check student student_first_name_short "char_length(first_name) <= 80"
generate rename-column student major programme
generate change-type student enrolled_on timestamptz --as enrolled_at \
  --using "(enrolled_on::timestamp AT TIME ZONE 'UTC')" --back "(enrolled_at AT TIME ZONE 'UTC')::date"
generate drop-column student nickname

written=$(comm -13 <(echo "$before") <(ls "$work/migrations"))
count=$(echo "$written" | wc -l)
echo "--- diesel migration redo -n $count" >&2
(cd "$work" && diesel migration redo --migration-dir migrations -n "$count" >/dev/null)

mkdir "$work/written"
for folder in $written; do
  cp -r "$work/migrations/$folder" "$work/written/"
done
scripts/lint-migrations.sh "$work/written"
echo "migrate new: $count folders for 12 changes, applied and redone by the diesel CLI, pass the lint as written"
