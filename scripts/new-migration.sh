#!/usr/bin/env bash
# `diesel migration generate`, then a check that the new folder is the newest in migrations/ (a
# branch that sat unmerged while newer migrations landed must take a fresh timestamp), and a
# reminder of this project's rules. For the shapes it knows, `students-api migrate new` writes
# the whole chain instead. Arguments go to diesel's generator:
#
#   scripts/new-migration.sh add_email
#
# No `SET LOCAL lock_timeout` line: the service sets each transactional migration's lock wait
# itself (`migration_lock_wait`) and retries one that runs out (docs/migrations.md, "A team's migration
# history").
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
newest=$(cd migrations && printf '%s\n' */ | tail -n 1)
newest=${newest%/}
[ "$newest" = "$created" ] ||
  die "migrations/$created is older than migrations/$newest: give it a later timestamp"

cat <<EOT
Created migrations/$created.
(For a column, an index, a constraint, NOT NULL, a rename, a type change or a drop,
\`cargo run -- migrate new <operation>\` writes the whole chain instead: see migrations/README.md.)
Write the change in up.sql and its undoing in down.sql; then run \`diesel migration run\` and
\`diesel migration redo\`. Leave lock_timeout to the service: it waits migration_lock_wait for
each lock and retries. A migration that cannot run in a transaction (CREATE INDEX CONCURRENTLY)
has a metadata.toml instead, as migrations/*_index_student_major does.
EOT
