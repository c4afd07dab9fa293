#!/usr/bin/env bash
# Refuses a migration history whose folders were not added in the order of their timestamps: a
# branch that added an older-stamped migration, merged after a newer one landed, would have
# `migrate run` refuse it in every database where the newer one already ran (README, "A team's
# migration history"). Caught here, the fix is a rename before it merges.
#
#   scripts/check-migration-order.sh [REPOSITORY]     # default: this checkout
#
# It reads git: each folder of migrations/ counts as added by the first-parent commit that last
# added its up.sql (a merge counts as adding what its branch brought), and folders not committed
# yet count as added last. Along that order, each folder's timestamp must be newer than every
# folder's added before it. Folders added by the same commit are free among themselves.
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$repo"

if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "check-migration-order: $repo is a shallow clone, so the order migrations were added in is unknown: fetch the whole history (git fetch --unshallow)" >&2
  exit 1
fi

# One line per commit, oldest first: "commit <hash>", then the up.sql files it added.
history=$(git log --reverse --first-parent --diff-merges=first-parent --no-renames \
  --diff-filter=A --name-only --format='commit %h' -- 'migrations/*/up.sql')
uncommitted=$(git ls-files --others --exclude-standard -- 'migrations/*/up.sql')

awk -v uncommitted="$uncommitted" '
  function folder(path) { sub(/^migrations\//, "", path); sub(/\/up\.sql$/, "", path); return path }
  # The last commit that added a folder wins: it was deleted and added again there.
  $1 == "commit" { commit = $2; order++; next }
  NF { added[folder($0)] = order; by[folder($0)] = commit }
  END {
    n = split(uncommitted, extra, "\n")
    for (i = 1; i <= n; i++) if (extra[i] != "") { added[folder(extra[i])] = order + 1; by[folder(extra[i])] = "the working tree (not committed)" }
    # Only the folders there now: a deleted one is gone from every future database.
    while (("ls -1 migrations" | getline name) > 0) if (name in added) present[name] = 1
    status = 0
    for (late in present) {
      # The newest folder added before it, if that is newer than it.
      newest = ""
      for (early in present) if (added[early] < added[late] && early > late && early > newest) newest = early
      if (newest != "") {
        printf "migrations/%s was added by %s, after migrations/%s (added by %s), but its timestamp is older: a database that already ran the newer one refuses it. Rename it with a timestamp after %s.\n", late, by[late], newest, by[newest], substr(newest, 1, index(newest, "_") - 1) > "/dev/stderr"
        status = 1
      }
    }
    exit status
  }' <<<"$history"
