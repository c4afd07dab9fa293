#!/usr/bin/env bash
# Lints every migration with squawk (from PyPI's squawk-cli wheel, installed into target/) using
# .squawk.toml. Folders whose metadata.toml sets run_in_transaction = false are linted as running
# outside a transaction. down.sql files are linted without the rules against dropping things:
# dropping what up.sql created is their purpose.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

SQUAWK_VERSION=2.70.0
venv=target/lint-venv
if ! "$venv/bin/squawk" --version 2>/dev/null | grep -q "$SQUAWK_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "squawk-cli==$SQUAWK_VERSION"
fi
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
drops+=,require-statement-timeout,prefer-bigint-over-int
for folder in "${in_transaction[@]}"; do
  squawk "$folder/up.sql" || status=1
  squawk --exclude "$drops" "$folder/down.sql" || status=1
done
for folder in "${outside[@]}"; do
  squawk --no-assume-in-transaction "$folder/up.sql" || status=1
  squawk --no-assume-in-transaction --exclude "$drops" "$folder/down.sql" || status=1
done
[ "$status" -eq 0 ] && echo "squawk: ${#in_transaction[@]} transactional and ${#outside[@]} non-transactional migrations are clean"
exit "$status"
