#!/usr/bin/env bash
# Writes of two builds side by side, in one run: POST /students through wrk against each binary
# in turn (a 2 s warm-up, then DURATION s), ROUNDS times at 32 connections and at one, each
# binary on a database of its own that it migrated, on one throwaway PostgreSQL. Every request
# carries a token made by the second binary (the first may ignore it), so both send the same
# bytes. BENCHMARKS.md, "Writes with a token", is one such run. CASE=page measures the largest
# page instead, GET /students?limit=1000 over 1,000 students in each database ("A field more on
# every page"). CASE=keyed sends the after side each POST with an Idempotency-Key of its own and
# the before side the same POST without one: give one binary twice for the cost of the key
# ("Writes that can be retried").
#
#   scripts/with-throwaway-pg.sh scripts/bench-writes.sh BEFORE_BINARY AFTER_BINARY
#   CASE=page scripts/with-throwaway-pg.sh scripts/bench-writes.sh BEFORE_BINARY AFTER_BINARY
#   CASE=keyed scripts/with-throwaway-pg.sh scripts/bench-writes.sh BINARY BINARY
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

[ $# -eq 2 ] || die "usage: $0 BEFORE_BINARY AFTER_BINARY (release builds)"
: "${DATABASE_URL:?run it under scripts/with-throwaway-pg.sh}"
command -v wrk >/dev/null || die "wrk not found: sudo apt-get install wrk"
binaries=("$1" "$2")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CASE=${CASE:-post}
case $CASE in
  post | keyed) path=/students ;;
  page) path='/students?limit=1000' ;;
  *) die "CASE is post, keyed or page, not $CASE" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/students-bench-writes.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do stop_process "$pid"; done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

admin=$DATABASE_URL
ports=()
for i in 0 1; do
  side=$([ "$i" = 0 ] && echo before || echo after)
  psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$admin" -c "CREATE DATABASE writes_$side" >/dev/null
  url=$(pg_database_url "$admin" "writes_$side")
  binary=${binaries[$i]}
  DATABASE_URL=$url "$binary" migrate run >/dev/null 2>&1
  if [ "$CASE" = page ]; then
    psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$url" -c "INSERT INTO student (first_name, last_name, \
      major, email) SELECT 'First' || n, 'Last' || n, 'Physics', 'f' || n || '@example.org' \
      FROM generate_series(1, 995) AS n" >/dev/null
  fi
  if [ "$side" = after ]; then
    BENCH_TOKEN=$(DATABASE_URL=$url "$binary" token create bench | tail -n 1)
    export BENCH_TOKEN
    if [ "$CASE" = keyed ]; then
      # The before side is the same binary, which needs the token too: its digest, copied.
      digest=$(psql --no-psqlrc -At "$url" -c "SELECT encode(sha256, 'hex') FROM api_token")
      psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$(pg_database_url "$admin" writes_before)" -c \
        "INSERT INTO api_token (name, sha256) VALUES ('bench', decode('$digest', 'hex'))" >/dev/null
    fi
  fi
  port=$(free_port)
  DATABASE_URL=$url ROCKET_PORT=$port ROCKET_ADDRESS=127.0.0.1 ROCKET_LOG_LEVEL=critical \
    ROCKET_MIGRATE_ON_START=false "$binary" >"$work/$side.log" 2>&1 &
  pids+=($!)
  ports+=("$port")
done
case $CASE in
  post) cat bench/report.lua bench/post.lua >"$work/script.lua" ;;
  keyed) cat bench/report.lua bench/post.lua >"$work/script.lua"
    cat bench/report.lua bench/post-keyed.lua bench/post.lua >"$work/keyed.lua" ;;
  page) cp bench/report.lua "$work/script.lua" ;;
esac
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null && break
    sleep 0.1
  done
done

# One measurement: "req/s mean_ms p99_ms non2xx".
measure() {
  local port=$1 connections=$2 script=${3:-$work/script.lua} threads out
  threads=$((connections < 2 ? 1 : 2))
  wrk -t"$threads" -c"$connections" -d2s -s "$script" "http://127.0.0.1:$port$path" >/dev/null
  out=$(wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency -s "$script" \
    "http://127.0.0.1:$port$path")
  local result
  result=$(grep '^RESULT' <<<"$out")
  eval "local ${result#RESULT }"
  # shellcheck disable=SC2154 # set by the eval of wrk's RESULT line
  awk -v r="$requests" -v s="$seconds" -v m="$mean_ms" -v p="$p99_ms" -v n="$non2xx" \
    'BEGIN { printf "%.0f %.2f %.2f %d", r / s, m, p, n }'
}

echo "| connections | round | before req/s | after req/s | before mean / p99 ms | after mean / p99 ms | non-2xx |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for connections in 32 1; do
  for round in $(seq 1 "$ROUNDS"); do
    read -r b_rps b_mean b_p99 b_bad <<<"$(measure "${ports[0]}" "$connections")"
    after_script=$work/script.lua
    [ "$CASE" != keyed ] || after_script=$work/keyed.lua
    read -r a_rps a_mean a_p99 a_bad <<<"$(measure "${ports[1]}" "$connections" "$after_script")"
    echo "| $connections | $round | $b_rps | $a_rps | $b_mean / $b_p99 | $a_mean / $a_p99 | $((b_bad + a_bad)) |"
  done
done
