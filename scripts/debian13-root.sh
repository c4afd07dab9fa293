#!/usr/bin/env bash
# Makes (once) a Debian 13 root holding its PgBouncer (1.24, which carries prepared statements
# through transaction pooling; Debian 12's is 1.18) and its PostgreSQL 17 server. It is run through
# chroot, so nothing of Debian 13 is installed on this machine. Prints the root's path.
#
#   PGBOUNCER_ROOT=$(scripts/debian13-root.sh) scripts/test.sh --test api pgbouncer   # PgBouncer 1.24
#   PG_ROOT=$(scripts/debian13-root.sh) scripts/test.sh                               # PostgreSQL 17
#
# About 350 MB under target/, made in two or three minutes by debootstrap from deb.debian.org;
# needs root and the debootstrap package. DEBIAN13_ROOT puts it elsewhere.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/lib.sh"

dir=${DEBIAN13_ROOT:-$root/target/debian13}
packages=pgbouncer,postgresql-17
if [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$packages" ]; then
  echo "$dir"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "making the Debian 13 root needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap is missing: sudo apt-get install debootstrap"
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
debootstrap --variant=minbase --include="$packages" trixie "$dir" http://deb.debian.org/debian \
  >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; die "debootstrap of Debian 13 failed"; }
rm -f "$dir.log"
# The server's own clusters stay unused: the scripts make theirs in the root's /tmp.
chmod 1777 "$dir/tmp"
echo "$packages" >"$dir/.complete"
echo "$dir"
