#!/usr/bin/env bash
# Makes (once) a Debian 13 root holding its PgBouncer (1.24), which carries prepared statements
# through transaction pooling (`max_prepared_statements`); Debian 12's is 1.18. The root is run
# through chroot, so nothing of Debian 13 is installed on this machine. Prints the root's path.
#
#   PGBOUNCER_ROOT=$(scripts/pgbouncer-root.sh) scripts/test.sh pgbouncer   # the tests against 1.24
#
# About 290 MB under target/, made in a minute or two by debootstrap from deb.debian.org; needs
# root and the debootstrap package.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/lib.sh"

dir=${PGBOUNCER_ROOT:-$root/target/trixie-pgbouncer}
if [ -x "$dir/usr/sbin/pgbouncer" ] && [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "making the Debian 13 root needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap is missing: sudo apt-get install debootstrap"
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
debootstrap --variant=minbase --include=pgbouncer trixie "$dir" http://deb.debian.org/debian \
  >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; die "debootstrap of Debian 13 failed"; }
rm -f "$dir.log"
touch "$dir/.complete"
echo "$dir"
