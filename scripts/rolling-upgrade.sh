#!/usr/bin/env bash
# The rolling-upgrade test: three replicas of the previous release behind HAProxy, replaced one by
# one with this checkout's binary under constant load while its migrations are applied: the
# `enrolled_on` column, then, under the new binary, the batched backfill of 200,000 old students
# (killed with SIGKILL halfway and run again) and the contract steps. Zero failed requests allowed;
# tests/harness/rolling_upgrade.py says exactly what it checks.
# Then its negative control: a column renamed in one step must make the same checks fail.
#
#   scripts/rolling-upgrade.sh                      # both, against a throwaway PostgreSQL
#   scripts/rolling-upgrade.sh --negative-control   # the control only
#
# The previous release is the commit before the one that added the expand migration, checked out
# with `git worktree` and built from source, so it is the real old binary. OLD_COMMIT overrides it.
# Needs haproxy (Debian's package) and the git history (not a --depth clone).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

require haproxy psql

expand=$(cd migrations && printf '%s\n' *_add_student_enrolled_on | head -n 1)
[ -f "migrations/$expand/up.sql" ] || die "no *_add_student_enrolled_on migration"
if [ -z "${OLD_COMMIT:-}" ]; then
  added=$(git log --diff-filter=A --format=%H -1 -- "migrations/$expand/up.sql")
  [ -n "$added" ] || die "git history does not say which commit added migrations/$expand"
  OLD_COMMIT=$(git rev-parse --verify -q "$added^") ||
    die "the commit before $added is not in this clone (a --depth clone?): fetch the history"
fi

work=$root/target/rolling-upgrade
mkdir -p "$work/bin"
if [ -e "$work/old-src/.git" ]; then
  git -C "$work/old-src" checkout -q --detach "$OLD_COMMIT"
else
  git worktree prune
  git worktree add -q --detach "$work/old-src" "$OLD_COMMIT"
fi
echo "previous release: $(git log -1 --format='%h %s' "$OLD_COMMIT")"
# Its own target dir, at the price of building the dependencies once more: cargo names a binary
# by package and profile, not by source folder, so building the old checkout into target/ would
# overwrite this checkout's binary there and leave cargo believing it up to date.
cargo build --locked --quiet --manifest-path "$work/old-src/Cargo.toml" --target-dir "$work/old-target"
cargo build --locked --quiet
cp "$work/old-target/debug/students-api" "$work/bin/students-api-old"
cp target/debug/students-api "$work/bin/students-api-new"

run() {
  scripts/with-throwaway-pg.sh python3 tests/harness/rolling_upgrade.py \
    --old "$work/bin/students-api-old" --old-config "$work/old-src/Rocket.toml" \
    --new "$work/bin/students-api-new" --new-config "$root/Rocket.toml" "$@"
}
if [ "${1:-}" != --negative-control ]; then
  echo "== rolling upgrade: expand, replace the replicas one by one, contract"
  run --workdir "$work/run"
fi
echo "== negative control: a column renamed in one step must fail the same checks and turn every replica unready"
run --workdir "$work/negative-control" --negative-control
