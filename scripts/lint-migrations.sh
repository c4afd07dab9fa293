#!/usr/bin/env bash
# Lints every migration with squawk (from PyPI's squawk-cli wheel, installed into target/) using
# .squawk.toml. Folders whose metadata.toml sets run_in_transaction = false are linted as running
# outside a transaction. down.sql files are linted without the rules against dropping things:
# dropping what up.sql created is their purpose.
#
# squawk's rules also refuse what breaks the binary still serving while a migration runs: renaming
# a column, changing its type, dropping it, or making it required. A contract step that does so on
# purpose names the rule in `-- squawk-ignore <rule>` (squawk's own mechanism); the engine's rules,
# run by the test suite (tests/api/migration_rules.rs), require a `-- contract:` line above it and
# a post-deploy migration, and read git for the order migrations were added in. This checks
# itself on tests/lint/: the breaking steps must fail, the marked contract step must pass.
#
# It refuses an UPDATE or DELETE that may change a whole table in one transaction
# (scripts/lint-data-changes.py).
#
#   scripts/lint-migrations.sh [DIR]     # default: migrations/
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Another folder of migrations to lint instead of migrations/ (say, chains `migrate new` wrote).
dir=$(cd "${1:-$root/migrations}" && pwd)
cd "$root"
. scripts/lib.sh

SQUAWK_VERSION=2.70.0
PGLAST_VERSION=8.8
venv=target/lint-venv
python_tool "$venv" "squawk-cli==$SQUAWK_VERSION"
python_tool "$venv" "pglast==$PGLAST_VERSION"
squawk() { "$venv/bin/squawk" --config .squawk.toml --reporter gcc "$@"; }

in_transaction=()
outside=()
for folder in "$dir"/*/; do
  if grep -Eqs '^\s*run_in_transaction\s*=\s*false' "$folder/metadata.toml"; then
    outside+=("$folder")
  else
    in_transaction+=("$folder")
  fi
done

status=0
# --exclude replaces .squawk.toml's excluded_rules rather than adding to them, so repeat those.
drops=ban-drop-table,ban-drop-column,ban-drop-constraint,ban-drop-function,ban-drop-index
drops+=,require-statement-timeout,require-lock-timeout,prefer-bigint-over-int
for folder in "${in_transaction[@]}"; do
  squawk "$folder/up.sql" || status=1
  squawk --exclude "$drops" "$folder/down.sql" || status=1
done
for folder in "${outside[@]}"; do
  squawk --no-assume-in-transaction "$folder/up.sql" || status=1
  squawk --no-assume-in-transaction --exclude "$drops" "$folder/down.sql" || status=1
done

# The gate itself: each breaking step is refused by its rule, and a marked contract step passes.
report=$(squawk tests/lint/breaks-the-previous-binary.sql 2>&1 || true)
for rule in renaming-column changing-column-type ban-drop-column adding-required-field \
  adding-not-nullable-field; do
  if ! grep -q " $rule " <<<"$report"; then
    echo "self-check: squawk no longer refuses $rule in tests/lint/breaks-the-previous-binary.sql" >&2
    status=1
  fi
done
if ! squawk tests/lint/marked-contract-step.sql >/dev/null; then
  echo "self-check: squawk refuses tests/lint/marked-contract-step.sql, a marked contract step" >&2
  status=1
fi

# No UPDATE or DELETE that may change a whole table in one go (scripts/lint-data-changes.py):
# bounded by a LIMIT, as a batched migration's batch is, or by the rows it names. Checked on
# tests/lint/ too: the unbounded ones must be refused, the bounded ones accepted.
"$venv/bin/python" scripts/lint-data-changes.py "$dir"/*/up.sql "$dir"/*/down.sql || status=1
for fixture in tests/lint/unbounded-update.sql tests/lint/unbounded-delete.sql tests/lint/unbounded-slice.sql \
  tests/lint/skip-locked-batch.sql; do
  if "$venv/bin/python" scripts/lint-data-changes.py "$fixture" 2>/dev/null; then
    echo "self-check: lint-data-changes.py accepts $fixture, an unbounded change of a whole table" >&2
    status=1
  fi
done
if ! "$venv/bin/python" scripts/lint-data-changes.py tests/lint/bounded-changes.sql; then
  echo "self-check: lint-data-changes.py refuses tests/lint/bounded-changes.sql, bounded changes" >&2
  status=1
fi
# A contract step's undoing may put back what it dropped at once, in a down.sql, marked.
if ! "$venv/bin/python" scripts/lint-data-changes.py tests/lint/restore/down.sql; then
  echo "self-check: lint-data-changes.py refuses tests/lint/restore/down.sql, a marked restore" >&2
  status=1
fi
restore_as_up=$(mktemp -d)
cp tests/lint/restore/down.sql "$restore_as_up/up.sql"
if "$venv/bin/python" scripts/lint-data-changes.py "$restore_as_up/up.sql" 2>/dev/null; then
  echo "self-check: lint-data-changes.py accepts a marked restore in an up.sql" >&2
  status=1
fi
rm -rf "$restore_as_up"

[ "$status" -eq 0 ] && echo "squawk: ${#in_transaction[@]} transactional and ${#outside[@]} non-transactional migrations are clean; the compatibility gate and the data-change check refuse what they must"
exit "$status"
