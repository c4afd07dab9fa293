#!/usr/bin/env bash
# The edge test (tests/harness/edge.py): the service behind deploy/haproxy/haproxy.cfg, against a
# throwaway PostgreSQL: 2,000 clients that never finish their headers, a body sent at 1 byte/s, a
# DELETE smuggled behind Content-Length + Transfer-Encoding, and the edge's own errors, each with
# a negative control.
#
#   scripts/edge-test.sh
#   SLOW_CLIENTS=500 scripts/edge-test.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

require haproxy psql

cargo build --locked --quiet --bin students-api
work=$root/target/edge-test
mkdir -p "$work"
SERVICE_BIN=$root/target/debug/students-api EDGE_CONFIG=$root/deploy/haproxy/haproxy.cfg \
  EDGE_WORKDIR=$work scripts/with-throwaway-pg.sh python3 tests/harness/edge.py
