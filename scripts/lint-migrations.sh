#!/usr/bin/env bash
# Lints every migration with squawk (from PyPI's squawk-cli wheel, installed into target/) using
# .squawk.toml. Folders whose metadata.toml sets run_in_transaction = false are linted as running
# outside a transaction. down.sql files are linted without the rules against dropping things:
# dropping what up.sql created is their purpose.
#
# squawk's rules also refuse what breaks the binary still serving while a migration runs: renaming
# a column, changing its type, dropping it, or making it required. A contract step that does so on
# purpose names the rule in `-- squawk-ignore <rule>` (squawk's own mechanism) and says why in a
# `-- contract:` line just above it; this script refuses an ignore without one, and a contract
# step outside a post-deploy migration (`post_deploy = true` in its metadata.toml). It also checks
# itself on tests/lint/: the breaking steps must fail, the marked contract step must pass.
#
# It refuses an UPDATE or DELETE that may change a whole table in one transaction
# (scripts/lint-data-changes.py).
#
# Last, scripts/check-migration-order.sh reads git for the order migrations were added in, which
# must be their timestamps' order, and is checked on a throwaway repository that breaks it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
for folder in migrations/*/; do
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

# Ignoring a rule that protects the serving binary needs its reason, on the line before it.
compatibility=renaming-column,renaming-table,changing-column-type,ban-drop-column,ban-drop-table
compatibility+=,adding-required-field,adding-not-nullable-field
for file in migrations/*/up.sql tests/lint/marked-contract-step.sql; do
  unexplained=$(awk -v rules="$compatibility" '
    BEGIN { n = split(rules, list, ",") }
    /^--[[:space:]]*squawk-ignore/ && previous !~ /^--[[:space:]]*contract:/ {
      for (i = 1; i <= n; i++) if (index($0, list[i])) {
        print FILENAME ":" FNR ": ignores " list[i] " without a -- contract: line above it"; break
      }
    }
    { previous = $0 }' "$file")
  if [ -n "$unexplained" ]; then
    echo "$unexplained" >&2
    status=1
  fi
done

# A contract step breaks the previous binary, so it must wait until that binary is gone: its
# migration is a post-deploy one, which `migrate run --skip-post-deploy` leaves for after the
# rollout.
contract_outside_post_deploy() {
  local folder=$1
  grep -Eq '^--[[:space:]]*contract:' "$folder/up.sql" &&
    ! grep -Eqs '^\s*post_deploy\s*=\s*true' "$folder/metadata.toml"
}
for folder in migrations/*/; do
  folder=${folder%/}
  if contract_outside_post_deploy "$folder"; then
    echo "$folder/up.sql: a contract step in a migration that is not post-deploy: add \`post_deploy = true\` (and \`run_in_transaction = true\`) to $folder/metadata.toml" >&2
    status=1
  fi
done

# The gate itself: each breaking step is refused by its rule, a contract step outside a post-deploy
# migration is refused, and a marked contract step passes.
report=$(squawk tests/lint/breaks-the-previous-binary.sql 2>&1 || true)
for rule in renaming-column changing-column-type ban-drop-column adding-required-field \
  adding-not-nullable-field; do
  if ! grep -q " $rule " <<<"$report"; then
    echo "self-check: squawk no longer refuses $rule in tests/lint/breaks-the-previous-binary.sql" >&2
    status=1
  fi
done
if ! contract_outside_post_deploy tests/lint/contract-not-post-deploy; then
  echo "self-check: tests/lint/contract-not-post-deploy passes, though its contract step is not post-deploy" >&2
  status=1
fi
if ! squawk tests/lint/marked-contract-step.sql >/dev/null; then
  echo "self-check: squawk refuses tests/lint/marked-contract-step.sql, a marked contract step" >&2
  status=1
fi

# No UPDATE or DELETE that may change a whole table in one go (scripts/lint-data-changes.py):
# bounded by a LIMIT, as a batched migration's batch is, or by the rows it names. Checked on
# tests/lint/ too: the unbounded ones must be refused, the bounded ones accepted.
"$venv/bin/python" scripts/lint-data-changes.py migrations/*/up.sql migrations/*/down.sql || status=1
for fixture in tests/lint/unbounded-update.sql tests/lint/unbounded-delete.sql \
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

# The order migrations were added in, read from git, must be their timestamps' order; and the
# check refuses a history that breaks it (a throwaway repository with an older-stamped migration
# committed after a newer one, then the same folder renamed, which it must accept).
scripts/check-migration-order.sh || status=1
order_fixture=$(mktemp -d)
(
  cd "$order_fixture"
  git init -q && git config user.email lint@localhost && git config user.name lint
  add() { mkdir -p "migrations/$1" && echo "SELECT 1;" >"migrations/$1/up.sql" && git add -A && git commit -qm "$1"; }
  add 2026-01-02-000000-0000_newer
  add 2026-01-01-000000-0000_merged_late
) >/dev/null
if "$root/scripts/check-migration-order.sh" "$order_fixture" 2>/dev/null; then
  echo "self-check: check-migration-order.sh accepts a migration committed after a newer one" >&2
  status=1
fi
(
  cd "$order_fixture"
  git mv migrations/2026-01-01-000000-0000_merged_late migrations/2026-01-03-000000-0000_merged_late
  git commit -qm rename
) >/dev/null
if ! "$root/scripts/check-migration-order.sh" "$order_fixture"; then
  echo "self-check: check-migration-order.sh refuses a late migration renamed to a newer timestamp" >&2
  status=1
fi
rm -rf "$order_fixture"

[ "$status" -eq 0 ] && echo "squawk: ${#in_transaction[@]} transactional and ${#outside[@]} non-transactional migrations are clean; the compatibility gate, the data-change check and the order check refuse what they must"
exit "$status"
