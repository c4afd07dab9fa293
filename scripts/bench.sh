#!/usr/bin/env bash
# Benchmark: from nothing, a throwaway PostgreSQL, the service built with the release profile, and
# wrk on loopback; prints a Markdown table of throughput, latency, errors and peak memory per
# case, PostgreSQL's own ceiling for the same queries (pgbench, same concurrency), cold start,
# and the time to migrate an empty database.
#
#   scripts/bench.sh                       # 10 s per case, 32 connections
#   DURATION=30 CONNECTIONS=64 scripts/bench.sh
#
# Absolute numbers depend on the machine and on what else runs on it: the service, PostgreSQL
# and wrk share its cores. Compare runs on the same machine only.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROWS=${ROWS:-100000}

# The throwaway server first: everything below runs inside it.
if [ -z "${BENCH_INSIDE:-}" ]; then
  command -v wrk >/dev/null || {
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      echo "Installing wrk" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
      die "wrk not found: sudo apt-get install wrk"
    fi
  }
  echo "Building the release binary" >&2
  cargo build --release --locked --quiet --bin students-api
  unset DATABASE_URL
  BENCH_INSIDE=1 exec scripts/with-throwaway-pg.sh "$0" "$@"
fi

pg_find_bin
work=$(mktemp -d "${TMPDIR:-/tmp}/students-bench.XXXXXX")
service=
cleanup() {
  local status=$?
  stop_process "$service"
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

admin_url=$DATABASE_URL
db_url=$(pg_database_url "$admin_url" bench)
sql() { psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --tuples-only --no-align "$db_url" -c "$1"; }
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE bench" >/dev/null
binary=target/release/students-api

now_ms() { date +%s%3N; }

# Status code of GET $2 on port $1 over a raw socket: cheaper than starting curl, so polling for
# the first answer measures the service, not the poller.
http_status() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&3
  IFS=' ' read -r _ line _ <&3 || true
  exec 3<&-
  echo "${line:-0}"
}

start_service() {
  port=$(free_port)
  DATABASE_URL=$db_url ROCKET_PORT=$port ROCKET_ADDRESS=127.0.0.1 ROCKET_LOG_LEVEL=critical \
    "$binary" >"$work/service.log" 2>&1 &
  service=$!
}

# Milliseconds from starting the process to its first 200 on /students.
time_to_first_200() {
  local started status
  started=$(now_ms)
  start_service
  for _ in $(seq 1 20000); do
    status=$(http_status "$port" /students 2>/dev/null || echo 0)
    [ "$status" = 200 ] && break
    kill -0 "$service" 2>/dev/null || die "the service exited: $(tail -5 "$work/service.log")"
  done
  echo $(($(now_ms) - started))
}

stop_service() {
  stop_process "$service"
  service=
}

peak_rss_mib() {
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$service/status"
}

echo "Migrating an empty database" >&2
started=$(now_ms)
DATABASE_URL=$db_url "$binary" migrate run >/dev/null 2>&1
migrate_ms=$(($(now_ms) - started))
# The writes' token (bench/post.lua sends it).
BENCH_TOKEN=$(DATABASE_URL=$db_url "$binary" token create bench | tail -n 1)
export BENCH_TOKEN

echo "Cold starts" >&2
colds=()
for _ in 1 2 3 4 5; do
  colds+=("$(time_to_first_200)")
  stop_service
done
cold_ms=$(printf '%s\n' "${colds[@]}" | sort -n | sed -n 3p)

start_service
until [ "$(http_status "$port" /students 2>/dev/null || echo 0)" = 200 ]; do sleep 0.05; done

rows=()
# wrk against the service: one table row.
measure() {
  local name=$1 path=$2 script=$3 out
  [ "$WARMUP" -gt 0 ] && wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$script" \
    "http://127.0.0.1:$port$path" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" \
    "http://127.0.0.1:$port$path")
  echo "$out" >"$work/wrk-${#rows[@]}.txt"
  local result
  result=$(grep '^RESULT' <<<"$out")
  eval "local ${result#RESULT }"
  # shellcheck disable=SC2154 # set by the eval of wrk's RESULT line
  rps=$(awk -v r="$requests" -v s="$seconds" 'BEGIN { printf "%.0f", r / s }')
  rows+=("$name|$rps|$mean_ms|$p99_ms|$non2xx|$socket_errors|$(peak_rss_mib)")
  last_rps=$rps
}

# pgbench running the service's own query: the database's ceiling on the same cores.
pgbench_tps() {
  local name=$1 query=$2
  printf '%s\n' "$query" >"$work/$name.sql"
  "$PG_BIN/pgbench" -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" \
    -f "$work/$name.sql" "$db_url" 2>/dev/null |
    awk '/tps = / && /without initial connection time|excluding connections/ { printf "%.0f", $3 }'
}

get_script="$work/get.lua"
cp bench/report.lua "$get_script"
post_script="$work/post.lua"
cat bench/report.lua bench/post.lua >"$post_script"
columns="id, first_name, last_name, major, created_at, updated_at"

ceilings=()
echo "GET /students (5 rows)" >&2
measure "GET /students (5 rows)" /students "$get_script"
ceilings+=("$last_rps|$(pgbench_tps list5 "SELECT $columns FROM student ORDER BY id LIMIT 101;")")

echo "GET /students/3" >&2
measure "GET /students/3" /students/3 "$get_script"
ceilings+=("$last_rps|$(pgbench_tps one "SELECT $columns FROM student WHERE id = 3;")")

echo "POST /students" >&2
measure "POST /students" /students "$post_script"
ceilings+=("$last_rps|$(pgbench_tps insert "INSERT INTO student (first_name, last_name, major) VALUES ('Bench', 'Writer', 'Load Testing') RETURNING $columns;")")

# Readiness: the applied migrations and the catalog against src/schema.rs, on every probe. No
# single pgbench query stands for it.
echo "GET /ready" >&2
measure "GET /ready (migrations, order and drift checked)" /ready "$get_script"
ceilings+=("$last_rps|")

echo "Loading $ROWS rows" >&2
have=$(sql "SELECT count(*) FROM student")
sql "INSERT INTO student (first_name, last_name, major)
     SELECT 'First' || n, 'Last' || n, 'Major ' || (n % 50) FROM generate_series(1, $ROWS - $have) AS n" >/dev/null
sql "VACUUM ANALYZE student" >/dev/null
# Flush the load now rather than let a checkpoint land in the middle of a measurement.
sql "CHECKPOINT" >/dev/null
deep=$(sql "SELECT id FROM student ORDER BY id OFFSET $((ROWS - 2000)) LIMIT 1")

echo "GET /students?limit=1000" >&2
measure "GET /students?limit=1000, first page" "/students?limit=1000" "$get_script"
ceilings+=("$last_rps|$(pgbench_tps page "SELECT $columns FROM student ORDER BY id LIMIT 1001;")")
measure "GET /students?limit=1000, deep page" "/students?limit=1000&after_id=$deep" "$get_script"
ceilings+=("$last_rps|$(pgbench_tps deep "SELECT $columns FROM student WHERE id > $deep ORDER BY id LIMIT 1001;")")

stop_service

echo
echo "## students-api benchmark"
echo
echo "$(nproc) cores, $CONNECTIONS connections, ${DURATION}s per case, $(date -u +%Y-%m-%dT%H:%MZ)."
echo
echo "| case | req/s | mean ms | p99 ms | non-2xx | socket errors | peak RSS MiB | pgbench tps (same query) | % of pgbench |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for i in "${!rows[@]}"; do
  IFS='|' read -r name rps mean p99 non2xx sockerr rss <<<"${rows[$i]}"
  IFS='|' read -r svc tps <<<"${ceilings[$i]}"
  pct=$(awk -v a="$svc" -v b="$tps" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')
  echo "| $name | $rps | $mean | $p99 | $non2xx | $sockerr | $rss | ${tps:--} | $pct |"
done
echo
echo "| start-up | ms |"
echo "|---|---:|"
echo "| cold start, migrations already applied (median of 5, process start to first 200) | $cold_ms |"
echo "| full migration of an empty database (\`students-api migrate run\`) | $migrate_ms |"
