#!/usr/bin/env python3
"""Whether a page costs the same at any table size: the endpoints' p50 latency at --small
(20,000) students and again once the table has grown to --large (1,000,000), one client at a
time through wrk, and PostgreSQL's plan of the filtered page at both sizes, as the service runs
it: a prepared statement, whose plan PostgreSQL makes generic after five runs.

Students get one of 50 majors in turn, so `major=Major 7` matches one row in 50.
BENCHMARKS.md, "Pages at 1,000,000 rows", is one run.

    scripts/with-throwaway-pg.sh python3 scripts/bench-pages.py [--binary target/release/students-api]

Only the standard library, tests/harness/common.py and wrk.
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))

from common import free_port, migrate, psql, wait_ready, with_database  # noqa: E402

MAJORS = 50


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def grow(url, upto):
    """Inserts students until the table holds `upto`, majors in turn, then VACUUM ANALYZE."""
    have = int(psql(url, "SELECT count(*) FROM student"))
    if have < upto:
        psql(url, "INSERT INTO student (first_name, last_name, major, email) "
                  f"SELECT 'First' || n, 'Last' || n, 'Major ' || (n % {MAJORS}), "
                  f"'s' || n || '@example.org' FROM generate_series({have + 1}, {upto}) AS n")
    psql(url, "VACUUM ANALYZE student")
    psql(url, "CHECKPOINT")


def p50_ms(port, path, seconds):
    """wrk's p50 for `path`, one connection, after a second of warm-up."""
    url = f"http://127.0.0.1:{port}{path}"
    subprocess.run(["wrk", "-t1", "-c1", "-d1s", url], capture_output=True, check=True)
    out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def plan(url, after_id, major, limit):
    """EXPLAIN (ANALYZE, BUFFERS) of the filtered page as a generic prepared plan."""
    sql = (
        "SET plan_cache_mode = force_generic_plan;"
        "PREPARE page(int, text, bigint) AS "
        "SELECT id, first_name, last_name, major, created_at, updated_at, email, enrolled_on "
        "FROM student WHERE id > $1 AND major = $2 ORDER BY id LIMIT $3;"
        f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE page({after_id}, '{major}', {limit});"
    )
    done = subprocess.run(["psql", "--no-psqlrc", "-q", "-At", "-d", url, "-c", sql],
                          capture_output=True, text=True, check=True)
    return done.stdout.rstrip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/students-api")
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    admin = os.environ["DATABASE_URL"]
    psql(admin, "DROP DATABASE IF EXISTS bench_pages")
    psql(admin, "CREATE DATABASE bench_pages")
    url = with_database(admin, "bench_pages")
    migrate(args.binary, url, "run")
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, ROCKET_PORT=str(port), ROCKET_ADDRESS="127.0.0.1",
               ROCKET_LOG_LEVEL="critical", ROCKET_MIGRATE_ON_START="false")
    service = subprocess.Popen([args.binary], env=env, stdin=subprocess.DEVNULL)
    results = {}
    try:
        for rows in (args.small, args.large):
            log(f"{rows} students")
            grow(url, rows)
            wait_ready(port, 60)
            middle = rows // 2
            paths = {
                "first page": "/students",
                "page deep in the table": f"/students?after_id={middle}&limit=100",
                "filtered page": f"/students?major=Major%207&after_id={middle}&limit=100",
                "one student": f"/students/{middle}",
            }
            for name, path in paths.items():
                results[(name, rows)] = p50_ms(port, path, args.seconds)
            results[("plan", rows)] = plan(url, middle, "Major 7", 101)
    finally:
        service.terminate()
        service.wait(timeout=30)
        psql(admin, "DROP DATABASE IF EXISTS bench_pages")
    print(f"| endpoint (p50, 1 client) | {args.small:,} rows | {args.large:,} rows | ratio |")
    print("|---|---:|---:|---:|")
    for name in ("first page", "page deep in the table", "filtered page", "one student"):
        small, large = results[(name, args.small)], results[(name, args.large)]
        print(f"| {name} | {small:.2f} ms | {large:.2f} ms | {large / small:.2f}× |")
    for rows in (args.small, args.large):
        print(f"\nThe filtered page's generic plan at {rows:,} rows:\n\n```text\n"
              f"{results[('plan', rows)]}\n```")


if __name__ == "__main__":
    main()
