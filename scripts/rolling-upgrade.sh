#!/usr/bin/env bash
# The rolling-upgrade test: three replicas of the previous release behind HAProxy, replaced one by
# one under constant load with the release that added `enrolled_on` while its migrations are
# applied: the column, then, under the new binary, the batched backfill of 200,000 old students
# (killed with SIGKILL halfway and run again) and the contract steps. When later migrations
# follow (this checkout's), the replicas are then replaced again, with this checkout's binary,
# after its own migrations: release after release, as a fleet must go, since a release's expand
# steps wait for the contract steps of the one before. Zero failed requests allowed;
# tests/harness/rolling_upgrade.py says exactly what it checks.
# Then its negative control: a column renamed in one step must make the same checks fail.
#
#   scripts/rolling-upgrade.sh                      # both, against a throwaway PostgreSQL
#   scripts/rolling-upgrade.sh --negative-control   # the control only
#   PGBOUNCER_ROOT=$(scripts/debian13-root.sh) scripts/rolling-upgrade.sh
#                     # through PgBouncer 1.24 with prepared statements kept, as CI runs it
#
# The previous release is the commit before the one that added the expand migration, and the
# `enrolled_on` release the commit before the one that added the next migration after its
# chain, each checked out with `git worktree` and built from source, so they are the real
# binaries. OLD_COMMIT overrides the first. Needs haproxy (Debian's package) and the git history
# (not a --depth clone).
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

# The first migration after the enrolled_on release's last one, if this checkout has one.
last=$(cd migrations && printf '%s\n' *_student_enrolled_on_not_null | head -n 1)
next=$(cd migrations && printf '%s\n' */ | tr -d / | sort | awk -v last="$last" '$0 > last' | head -n 1)
RELEASE_COMMIT=
if [ -n "$next" ]; then
  added=$(git log --diff-filter=A --format=%H -1 -- "migrations/$next/up.sql")
  [ -n "$added" ] || die "git history does not say which commit added migrations/$next"
  RELEASE_COMMIT=$(git rev-parse --verify -q "$added^") ||
    die "the commit before $added is not in this clone (a --depth clone?): fetch the history"
fi

work=$root/target/rolling-upgrade
mkdir -p "$work/bin"
# $1 checked out at commit $2 in $work/$1-src, built, its binary copied to $work/bin/students-api-$1.
# One target dir for both, of their own, at the price of building the dependencies once more:
# cargo names a binary by package and profile, not by source folder, so building an older
# checkout into target/ would overwrite this checkout's binary there and leave cargo believing
# it up to date.
build_release() {
  local name=$1 commit=$2
  if [ -e "$work/$name-src/.git" ]; then
    git -C "$work/$name-src" checkout -q --detach "$commit"
  else
    git worktree prune
    git worktree add -q --detach "$work/$name-src" "$commit"
  fi
  echo "$name release: $(git log -1 --format='%h %s' "$commit")"
  cargo build --locked --quiet --manifest-path "$work/$name-src/Cargo.toml" --target-dir "$work/old-target"
  cp "$work/old-target/debug/students-api" "$work/bin/students-api-$name"
}
build_release old "$OLD_COMMIT"
cargo build --locked --quiet
cp target/debug/students-api "$work/bin/students-api-new"
releases=(--new "$work/bin/students-api-new" --new-config "$root/Rocket.toml")
if [ -n "$RELEASE_COMMIT" ]; then
  build_release enrolled "$RELEASE_COMMIT"
  releases=(--new "$work/bin/students-api-enrolled" --new-config "$work/enrolled-src/Rocket.toml"
    --next "$work/bin/students-api-new" --next-config "$root/Rocket.toml")
fi

run() {
  scripts/with-throwaway-pg.sh python3 tests/harness/rolling_upgrade.py \
    --old "$work/bin/students-api-old" --old-config "$work/old-src/Rocket.toml" \
    "${releases[@]}" "$@"
}
if [ "${1:-}" != --negative-control ]; then
  echo "== rolling upgrade: expand, replace the replicas one by one, contract"
  run --workdir "$work/run"
fi
echo "== negative control: a column renamed in one step must fail the same checks and turn every replica unready"
run --workdir "$work/negative-control" --negative-control
