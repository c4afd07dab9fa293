#!/usr/bin/env python3
"""A rolling upgrade whose schema change is a column rename written by `migrate new`, under load,
behind HAProxy: run by scripts/rolling-rename.sh, which builds the two releases and gives
DATABASE_URL.

The previous release (this checkout) serves `student.major` from three replicas, through
PgBouncer in transaction pooling, over --rows old students. The release rolled out is the same
code after a developer ran `migrate new rename-column student major programme`, `diesel
migration run` (which rewrote src/schema.rs) and pointed the queries at `programme`; its API is
unchanged. Under constant mixed load with a token (pages, reads, new students, PATCHes of old and
new ones):

  1. `migrate run --skip-post-deploy` with the new release: `programme`, the trigger that keeps
     both names in step, the backfill by key range and the index, while the previous release
     serves;
  2. each old replica gets SIGTERM, drains, exits, and a new one starts on its port: old and new
     serve together;
  3. with the load paused, every acknowledged write is read back through a replica of each
     release;
  4. `migrate run` applies the post-deploy steps under the new release, with the load running:
     the rules on `programme`, then the contract, which drops `major` and the trigger.

It passes when clients saw no answer but 2xx and no connection error, no request took longer
than --latency-bound, every acknowledged write reads back as acknowledged through both releases
and, at the end, through the new one, and the table ends with `programme` NOT NULL, and without
`major` or the trigger.

With --without-trigger, the trigger is dropped once the expand steps are applied, as a rename
written by hand without one would have it, and step 4 is left out. The run passes only if the
same checks then fail, proof that they can.

Only the standard library, so it runs wherever python3 does.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import common
from common import PgBouncer, free_port, psql, with_database
from rolling_upgrade import Haproxy, Load, Replica, bearer, log, migrate, roll, seed

FIELDS = ("id", "first_name", "last_name", "major", "email", "enrolled_on")


class Done(Exception):
    """The negative control stops before the contract."""


def unreadable(port, acknowledged, release):
    """The acknowledged writes a replica on `port` does not answer as acknowledged."""
    problems = []
    conn = None
    for sid, student in sorted(acknowledged.items()):
        status, _, served, raw = common.request(port, "GET", f"/students/{sid}", conn=conn)
        want = {key: student.get(key) for key in FIELDS}
        got = {key: served.get(key) for key in FIELDS} if status == 200 else raw[:200]
        if got != want:
            problems.append(f"{release}: student {sid}: acknowledged {want}, read {got}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the previous release")
    parser.add_argument("--old-config", required=True, help="its Rocket.toml")
    parser.add_argument("--new", required=True, help="the release with the rename")
    parser.add_argument("--new-config", required=True, help="its Rocket.toml")
    parser.add_argument("--workdir", required=True, help="logs and HAProxy's configuration")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--drain", type=int, default=3, help="the replicas' shutdown_drain, s")
    parser.add_argument("--latency-bound", type=float, default=1.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=60000, help="per load phase")
    parser.add_argument("--deadline", type=float, default=180, help="seconds per load phase")
    parser.add_argument("--rows", type=int, default=50_000, help="old students to backfill")
    parser.add_argument("--without-trigger", action="store_true", help="the negative control")
    args = parser.parse_args()

    server_url = os.environ["DATABASE_URL"]
    database = f"rolling_rename_{os.getpid()}"
    psql(server_url, f"CREATE DATABASE {database}")
    url = with_database(server_url, database)
    os.makedirs(args.workdir, exist_ok=True)
    replicas, haproxy, bouncer, witness = [], None, None, None
    phases = []
    problems = []
    try:
        bouncer = PgBouncer(server_url, tempfile.mkdtemp(prefix="rolling-pgbouncer-"))
        pooled = bouncer.url(database)
        migrate(args.old, url, "run")
        seeded = seed(url, args.rows)
        replicas = [Replica(f"r{n}", free_port(), args.workdir, args.drain) for n in (1, 2, 3)]
        for replica in replicas:
            replica.start("old", args.old, args.old_config, pooled,
                          ROCKET_PREPARED_STATEMENTS="false")
        haproxy = Haproxy(replicas, args.workdir)
        for replica in replicas:
            haproxy.wait_for(replica.name, "UP", 60)
        log(f"3 replicas of the previous release UP behind HAProxy on 127.0.0.1:{haproxy.frontend}")
        authorization = bearer(args.old, url)

        def start_load():
            load = Load(haproxy.frontend, args.workers, args.deadline, args.max_requests, 0.01,
                        seeded)
            load.authorization = authorization
            load.dated = True
            phases.append(load)
            return load.start()

        load = start_load()
        time.sleep(2)
        migrate(args.new, url, "run", "--skip-post-deploy")
        if args.without_trigger:
            log("negative control: the trigger that keeps both names in step, dropped")
            psql(url, "DROP TRIGGER student_major_programme_sync ON student")
        time.sleep(1)
        roll(replicas, haproxy, load, args.new, args.new_config, pooled, args.drain)
        time.sleep(1)
        load.finish()

        # Both releases read every write back: a replica of the previous one, outside HAProxy,
        # and one of the new one.
        witness = Replica("witness", free_port(), args.workdir, args.drain)
        witness.start("old", args.old, args.old_config, pooled, ROCKET_PREPARED_STATEMENTS="false")
        common.wait_ready(witness.port, 60)
        log(f"reading back {len(load.acknowledged)} acknowledged writes through both releases")
        problems += unreadable(witness.port, load.acknowledged, "previous release")
        problems += unreadable(replicas[0].port, load.acknowledged, "new release")
        witness.stop()
        witness = None

        if args.without_trigger:
            raise Done
        load = start_load()
        time.sleep(1)
        migrate(args.new, url, "run")
        time.sleep(2)
        load.finish()
    except Done:
        pass
    finally:
        for load in phases:
            load.finish()
        if haproxy is not None:
            haproxy.stop()
        running = [r.proc for r in replicas + [witness] if r and r.proc and r.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=args.drain + 20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if bouncer is not None:
            bouncer.stop()
            shutil.rmtree(bouncer.dir, ignore_errors=True)

    acknowledged = {}
    for load in phases:
        problems += load.failures
        acknowledged.update(load.acknowledged)
    if args.without_trigger:
        psql(server_url, f"DROP DATABASE {database} WITH (FORCE)")
        if problems:
            log(f"negative control: the checks failed, as they must ({len(problems)} problems):")
            for problem in problems[:5]:
                log(f"    {problem}")
            return 0
        log("FAIL: the negative control passed: these checks cannot tell a rename without its trigger")
        return 1
    try:
        shape = psql(
            url,
            "SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = 'student'::regclass "
            "AND attname = 'major' AND NOT attisdropped) || ' ' || "
            "(SELECT attnotnull FROM pg_attribute WHERE attrelid = 'student'::regclass "
            "AND attname = 'programme') || ' ' || "
            "(SELECT count(*) FROM pg_trigger WHERE tgname = 'student_major_programme_sync')",
        )
        if shape != "0 true 0":
            problems.append(f"major gone, programme NOT NULL, trigger gone: {shape}, not 0 true 0")
    except RuntimeError as err:
        problems.append(f"cannot read the table back: {err}")

    total = sum(len(load.latencies) for load in phases)
    slowest = max((load.slowest for load in phases), key=lambda s: s[0], default=(0.0, None))
    log(f"{total} answers in {len(phases)} load phases, {len(acknowledged)} students written; "
        f"slowest {slowest[0] * 1000:.0f} ms ({slowest[1]})")
    if slowest[0] > args.latency_bound:
        problems.append(f"{slowest[1]} took {slowest[0]:.2f} s, over the {args.latency_bound} s bound")
    if total < 200 or not acknowledged:
        problems.append(f"too little load to prove anything: {total} answers")
    if not problems:
        # At the end, through the new release, every write of both phases.
        new = Replica("final", free_port(), args.workdir, args.drain)
        new.start("new", args.new, args.new_config, url)
        try:
            common.wait_ready(new.port, 60)
            problems += unreadable(new.port, acknowledged, "new release, at the end")
        finally:
            new.stop()
    psql(server_url, f"DROP DATABASE {database} WITH (FORCE)")

    if problems:
        log(f"FAIL ({len(problems)} problems, logs in {args.workdir}):")
        for problem in problems[:30]:
            log(f"    {problem}")
        return 1
    log("ok: no failed request while both releases served; every acknowledged write reads back "
        "through both, and through the new one after the contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
