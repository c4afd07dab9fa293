#!/usr/bin/env python3
"""The enrolled_on backfill at --rows students (1,000,000), two ways in one run, while clients
PATCH random old students through the service the whole time:

  batched:  `students-api migrate run` after the expand step: the partial index, the batched
            backfill (a transaction per 5,000 rows), the contract steps;
  single:   the same change as one UPDATE in one transaction, as a migration without batches
            would make it, on a copy of the same table (CREATE DATABASE ... TEMPLATE).

Prints, for each: how long the change took, rows a second, and the latency of the PATCHes sent
while it ran (p50, p99, slowest), next to those sent before it. BENCHMARKS.md, "Backfilling
1,000,000 rows", is one run. Absolute figures depend on the machine; compare within one run.

    scripts/with-throwaway-pg.sh python3 scripts/bench-backfill.py [--binary target/release/students-api]

Only the standard library and tests/harness/common.py.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))

import common  # noqa: E402
from common import free_port, migrate, psql, with_database  # noqa: E402

SINGLE_UPDATE = (
    "UPDATE student SET enrolled_on = (created_at AT TIME ZONE 'UTC')::date "
    "WHERE enrolled_on IS NULL"
)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Patcher:
    """PATCHes of random old students' major, each request's start and latency recorded."""

    def __init__(self, load, worker):
        self.load, self.rng = load, random.Random(worker)

    def next_request(self):
        sid = self.rng.randint(1, self.load.rows)
        return "PATCH", f"/students/{sid}", {"major": f"Major {self.rng.randint(0, 39)}"}

    def headers(self):
        return self.load.authorization

    def failed(self, sent, error):
        self.load.errors.append(f"{sent[0]} {sent[1]}: {error!r}")

    def answered(self, sent, answer):
        status, elapsed = answer[0], answer[4]
        with self.load.lock:
            self.load.samples.append((sent[3], elapsed, status))


class Load(common.Load):
    def __init__(self, port, rows, token, workers):
        self.rows, self.samples, self.errors = rows, [], []
        self.authorization = {"Authorization": f"Bearer {token}"}
        super().__init__(port, workers, lambda worker: Patcher(self, worker),
                         deadline_s=900, max_requests=10_000_000, timeout=300)


def summary(samples):
    """(count, p50 ms, p99 ms, max ms) of the latencies."""
    if not samples:
        return (0, 0.0, 0.0, 0.0)
    ordered = sorted(elapsed for _, elapsed, _ in samples)
    pick = lambda p: ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000  # noqa: E731
    return (len(ordered), pick(0.5), pick(0.99), ordered[-1] * 1000)


def run_variant(name, binary, url, rows, token, workers, change):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, ROCKET_PORT=str(port), ROCKET_ADDRESS="127.0.0.1",
               ROCKET_LOG_LEVEL="critical", ROCKET_MIGRATE_ON_START="false")
    service = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if common.request(port, "GET", "/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{name}: the service never became ready")
        load = Load(port, rows, token, workers).start()
        time.sleep(5)
        log(f"{name}: changing {rows:,} rows under PATCH load")
        began = time.time()
        detail = change()
        ended = time.time()
        time.sleep(3)
        load.finish()
    finally:
        service.terminate()
        service.wait(timeout=30)
    if load.errors:
        raise RuntimeError(f"{name}: {len(load.errors)} failed requests: {load.errors[:3]}")
    # Not 2xx: a 503 once a request has waited the pool's timeout for a connection, all of them
    # held by PATCHes waiting for row locks.
    statuses = {}
    for _, _, status in load.samples:
        if not 200 <= status < 300:
            statuses[status] = statuses.get(status, 0) + 1
    failed = ", ".join(f"{n:,} × {status}" for status, n in sorted(statuses.items())) or "none"
    # A request overlaps the change when it was sent before the change ended and answered after
    # it began.
    during = [s for s in load.samples if s[0] < ended and s[0] + s[1] > began]
    before = [s for s in load.samples if s[0] + s[1] < began]
    return name, ended - began, detail, summary(before), summary(during), failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/students-api")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=8, help="concurrent PATCH clients")
    args = parser.parse_args()
    server = os.environ["DATABASE_URL"]
    names = sorted(os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                           "migrations")))
    expand = next(n for n in names if n.endswith("_add_student_enrolled_on"))
    before_expand = names[names.index(expand) - 1]

    psql(server, "CREATE DATABASE backfill_batched")
    batched_url = with_database(server, "backfill_batched")
    migrate(args.binary, batched_url, "run", "--to", before_expand)
    log(f"seeding {args.rows:,} students created over the past years")
    psql(batched_url,
         "INSERT INTO student (first_name, last_name, major, email, created_at, updated_at) "
         "SELECT 'Old' || n, 'Student' || n, 'Major ' || (n % 40), 'old' || n || '@example.org', "
         "now() - n * interval '97 seconds', now() - n * interval '97 seconds' "
         f"FROM generate_series(1, {args.rows - 5}) AS n")
    psql(batched_url, "VACUUM ANALYZE student")
    token = common.create_token(args.binary, batched_url, "bench")
    migrate(args.binary, batched_url, "run", "--skip-post-deploy")
    psql(server, "CREATE DATABASE backfill_single TEMPLATE backfill_batched")
    single_url = with_database(server, "backfill_single")

    def batched():
        lines = migrate(args.binary, batched_url, "run")
        done = next(line for line in lines if "no row left to change" in line)
        seconds = float(re.search(r", ([0-9.]+) s,", done).group(1))
        return f"backfill {seconds:.1f} s of it, {args.rows / seconds:,.0f} rows a second"

    def single():
        subprocess.run(["psql", "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", single_url,
                        "-c", SINGLE_UPDATE], check=True, stdout=subprocess.DEVNULL)
        return "one transaction"

    results = [
        run_variant("batched migration", args.binary, batched_url, args.rows, token,
                    args.workers, batched),
        run_variant("single UPDATE", args.binary, single_url, args.rows, token, args.workers,
                    single),
    ]
    left = psql(batched_url, "SELECT count(*) FROM student WHERE enrolled_on IS DISTINCT FROM "
                             "(created_at AT TIME ZONE 'UTC')::date")
    if left != "0":
        raise RuntimeError(f"{left} rows without their creation day after the batched backfill")
    for db in ("backfill_batched", "backfill_single"):
        psql(server, f"DROP DATABASE {db} WITH (FORCE)")

    print(f"{args.rows:,} students, {args.workers} clients PATCHing random ones throughout.\n")
    print("| change | took | | PATCHes before: p50 / p99 / max (ms) "
          "| PATCHes during: count, p50 / p99 / max (ms) | answers not 2xx |")
    print("|---|---|---|---|---|---|")
    for name, took, detail, before, during, failed in results:
        print(f"| {name} | {took:.1f} s | {detail}, {args.rows / took:,.0f} rows a second overall "
              f"| {before[1]:.1f} / {before[2]:.1f} / {before[3]:.0f} "
              f"| {during[0]:,}, {during[1]:.1f} / {during[2]:.1f} / {during[3]:.0f} | {failed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
