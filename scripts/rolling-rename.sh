#!/usr/bin/env bash
# The rolling upgrade of a column rename written by `migrate new`: the previous release is this
# checkout; the release rolled out is a copy of it where the change is made as a developer makes
# it: `students-api migrate new rename-column student major programme`, `diesel migration run`
# (which rewrites src/schema.rs), and the queries pointed at the new column with
# `#[diesel(column_name = programme)]`, the API unchanged. Then three replicas are replaced one
# by one under load; zero failed requests allowed (tests/harness/rolling_rename.py says exactly
# what it checks). Its negative control drops the trigger that keeps both names in step: the same
# checks must then fail. (scripts/rolling-upgrade.sh's control, a rename in one step, fails them
# too.)
#
#   scripts/rolling-rename.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

require haproxy psql diesel

work=$root/target/rolling-rename
rm -rf "${work:?}/new-src" "${work:?}/bin"
mkdir -p "$work/bin" "$work/new-src"
cargo build --locked --quiet
cp target/debug/students-api "$work/bin/students-api-old"

# The copy: every file git tracks, as it is in this working tree.
git ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$work/new-src")

write_the_change() {
  set -euo pipefail
  local admin=$DATABASE_URL name="rename_$$"
  psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$admin" -c "CREATE DATABASE $name"
  local url=${admin%/*}/$name
  (
    cd "$work/new-src"
    export DATABASE_URL=$url
    "$work/bin/students-api-old" migrate run 2>/dev/null
    "$work/bin/students-api-old" migrate new rename-column student major programme
    diesel migration run >/dev/null
  )
  psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$admin" -c "DROP DATABASE $name WITH (FORCE)"
}
export -f write_the_change
export work
echo "== the change, as a developer writes it"
scripts/with-throwaway-pg.sh bash -c write_the_change
grep -q 'programme -> Text' "$work/new-src/src/schema.rs" ||
  die "diesel migration run did not write programme into the copy's src/schema.rs"
# The queries: the field keeps its API name and reads the new column.
python3 - "$work/new-src" <<'PY'
import re, sys
root = sys.argv[1]
for path, pattern in (("src/students/input.rs", r"\n(\s*)pub major: (?:Name|Option<Name>),"),
                      ("src/students/model.rs", r"\n(\s*)major: String,")):
    path = f"{root}/{path}"
    text = open(path).read()
    text, count = re.subn(pattern, lambda m: f"\n{m.group(1)}#[diesel(column_name = programme)]{m.group(0)}", text)
    assert count >= 1, (path, pattern)
    text = text.replace("student::major.eq(", "student::programme.eq(")
    open(path, "w").write(text)
PY
# Its own target directory: cargo names a binary by package and profile, not by source folder.
cargo build --locked --quiet --manifest-path "$work/new-src/Cargo.toml" --target-dir "$work/new-target"
cp "$work/new-target/debug/students-api" "$work/bin/students-api-new"

run() {
  scripts/with-throwaway-pg.sh python3 tests/harness/rolling_rename.py \
    --old "$work/bin/students-api-old" --old-config "$root/Rocket.toml" \
    --new "$work/bin/students-api-new" --new-config "$work/new-src/Rocket.toml" "$@"
}
echo "== rolling upgrade: the rename's expand steps, the replicas replaced one by one, the contract"
run --workdir "$work/run"
echo "== negative control: the same rename without its trigger must fail the same checks"
run --workdir "$work/negative-control" --without-trigger --rows 5000
