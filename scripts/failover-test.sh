#!/usr/bin/env bash
# The service through database failovers (tests/harness/failover.py): etcd, two Patroni members
# of PostgreSQL in synchronous mode and HAProxy, from Debian's packages, on loopback; the
# leader killed and frozen under write load, with the negative controls (asynchronous
# replication loses acknowledged writes; retries without Idempotency-Key duplicate).
#
#   scripts/failover-test.sh                  # every scenario
#   scripts/failover-test.sh kill keyless     # some: kill, freeze, keyless, multihost, async
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

for tool in patroni etcd haproxy psql python3; do
  command -v "$tool" >/dev/null ||
    die "$tool not found: sudo apt-get install patroni etcd-server haproxy postgresql-client"
done
pg_find_bin
pg_pick_user

cargo build --locked --quiet --bin students-api
PG_BIN=$PG_BIN PG_RUN_AS=$PG_USER STUDENTS_API=$root/target/debug/students-api \
  exec python3 tests/harness/failover.py "$@"
