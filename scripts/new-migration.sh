#!/usr/bin/env bash
# `diesel migration generate`, then the line this project's transactional migrations start with
# in both directions (tests/migrations.rs holds every migration to it):
#
#   SET LOCAL lock_timeout = '5s';
#
# so DDL that waits for a lock gives up after 5 s instead of queueing every request behind it.
# diesel's generator has no templates, hence this wrapper. Arguments go to the generator:
#
#   scripts/new-migration.sh add_email
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

if [ $# -lt 1 ]; then
  echo "usage: $0 NAME [diesel migration generate options]" >&2
  exit 2
fi
command -v diesel >/dev/null ||
  die "the diesel CLI is missing: cargo install diesel_cli --no-default-features --features postgres"

before=$(ls migrations)
diesel migration generate "$@"
created=$(comm -13 <(echo "$before") <(ls migrations))
if [ -z "$created" ] || [ "$(echo "$created" | wc -l)" -ne 1 ]; then
  die "cannot tell which folder diesel created in migrations/"
fi

for file in up.sql down.sql; do
  path=migrations/$created/$file
  [ -f "$path" ] || continue
  {
    echo "SET LOCAL lock_timeout = '5s';"
    echo
    cat "$path"
  } >"$path.new"
  mv "$path.new" "$path"
done
cat <<EOF
Added the lock_timeout line to both files of migrations/$created.
Write the change in up.sql and its undoing in down.sql, below that line; then run
\`diesel migration run\` and \`diesel migration redo\`. A migration that cannot run in a
transaction (CREATE INDEX CONCURRENTLY) has a metadata.toml instead, as
migrations/*_index_student_major does.
EOF
