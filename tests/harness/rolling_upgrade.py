#!/usr/bin/env python3
"""A rolling upgrade with a schema change and a backfill of --rows students, under load, behind
HAProxy: run by scripts/rolling-upgrade.sh, which builds the two binaries and gives DATABASE_URL.

Three replicas of the previous binary serve behind HAProxy, which sends traffic only to replicas
whose /ready answers 200. Every replica reaches PostgreSQL through PgBouncer in transaction
pooling mode, as in the Kubernetes topology: with PGBOUNCER_ROOT, Debian 13's 1.24 with
`max_prepared_statements` and `prepared_statements = true`; otherwise Debian 12's 1.18 with
`prepared_statements = false`. Migrations go direct. The table starts with --rows students created over the past years. Under constant mixed
load with a token (pages anywhere in the table, reads, new students, PATCHes of old and new
students):

  1. the new binary applies what must come before it: `migrate run --skip-post-deploy`, which adds
     the nullable `enrolled_on` with its default (expand) while the previous release serves;
  2. each old replica gets SIGTERM, drains, exits, and a new one starts on its port; clients then
     send `enrolled_on` too;
  3. `migrate run` applies the post-deploy migrations under the new binary: the partial index, the
     batched backfill, which gets SIGKILL once it has logged progress, then, run again, the rest of
     the backfill and the contract steps (CHECK NOT VALID, VALIDATE, SET NOT NULL);
  4. with --next, the release after it does the same in turn: `migrate run --skip-post-deploy`,
     every replica replaced with it, `migrate run`.

It passes when clients saw no answer but 2xx and no connection error, no request took longer than
--latency-bound, every acknowledged write is in the table as acknowledged (`enrolled_on`
included), the second backfill run changed exactly the rows the killed one left, every old row
holds the day it was created (UTC), the column ends NOT NULL without its CHECK or index, and the
new replicas refuse a write without a token.

With --negative-control, the three replicas run the new binary and step 1 is a
backward-incompatible migration instead (a column renamed in one step). The run passes only if
those same checks fail, proof that they can, and if every replica turns unready on the drifted
schema, so that HAProxy takes it out.

Only the standard library, so it runs wherever python3 does.
"""

import argparse
import csv
import http.client
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import common
from common import PgBouncer, free_port, psql, with_database

# HAProxy polls /ready every 500 ms and takes a replica out after 2 failures: about 1 s after
# SIGTERM, well inside the replicas' drain (--drain, 3 s), so no request reaches a replica that has closed its listener.
HAPROXY_CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A fresh server-side connection per request: a replica that closes an idle keep-alive
    # connection as it shuts down can then never take a request with it.
    option http-server-close

frontend api
    bind 127.0.0.1:{frontend}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    # With a Host, which the service requires.
    http-check send meth GET uri /ready ver HTTP/1.1 hdr Host students-api
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{servers}

listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
"""


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Replica:
    def __init__(self, name, port, logdir, drain):
        self.name, self.port, self.drain = name, port, drain
        self.logdir = logdir
        self.proc = None

    def start(self, version, binary, config, database_url, **settings):
        env = dict(
            os.environ,
            **settings,
            DATABASE_URL=database_url,
            ROCKET_CONFIG=config,
            ROCKET_ADDRESS="127.0.0.1",
            ROCKET_PORT=str(self.port),
            # In a fleet the binary never migrates: the steps below do, in their order.
            ROCKET_MIGRATE_ON_START="false",
            ROCKET_SHUTDOWN_DRAIN=str(self.drain),
            ROCKET_LOG_LEVEL="normal",
        )
        logfile = open(os.path.join(self.logdir, f"{self.name}-{version}.log"), "wb")
        self.proc = subprocess.Popen(
            [binary], env=env, stdout=logfile, stderr=subprocess.STDOUT, cwd=self.logdir
        )

    def stop(self):
        """SIGTERM, then the exit status once the drain and Rocket's grace are over."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=self.drain + 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"killed after {self.drain + 20} s"


class Haproxy:
    def __init__(self, replicas, workdir):
        self.frontend, self.stats = free_port(), free_port()
        servers = "\n".join(
            f"    server {r.name} 127.0.0.1:{r.port} check" for r in replicas
        )
        self.config = os.path.join(workdir, "haproxy.cfg")
        with open(self.config, "w") as out:
            out.write(
                HAPROXY_CONFIG.format(frontend=self.frontend, stats=self.stats, servers=servers)
            )
        self.log = open(os.path.join(workdir, "haproxy.log"), "wb")
        self.proc = subprocess.Popen(
            ["haproxy", "-db", "-f", self.config], stdout=self.log, stderr=subprocess.STDOUT
        )

    def states(self):
        """Each server's state as HAProxy's stats page has it: UP, DOWN, ..."""
        conn = http.client.HTTPConnection("127.0.0.1", self.stats, timeout=2)
        try:
            conn.request("GET", "/stats;csv")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"].split(" ")[0]
            for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for(self, name, wanted, timeout):
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            try:
                state = self.states().get(name)
            except OSError:
                state = None
            if state == wanted:
                return
            time.sleep(0.1)
        raise RuntimeError(f"HAProxy never saw {name} {wanted} in {timeout} s (last: {state})")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Load(common.Load):
    """Mixed reads and writes, bounded by a deadline and a request count. Writes are acknowledged
    when answered 2xx; each thread changes only the students it created, so what it last saw
    acknowledged is what the table must hold at the end."""

    def __init__(self, port, workers, deadline_s, max_requests, think_s, seeded):
        self.authorization = {}  # {"Authorization": "Bearer ..."}
        self.seeded = seeded  # ids 1..seeded were there before the load
        self.workers = workers
        self.dated = False  # whether clients send enrolled_on: once every replica serves it
        self.dated_ids = set()  # students a client gave an enrolled_on
        self.by_op = {}
        self.latencies = []
        self.slowest = (0.0, None)
        self.failures = []
        self.acknowledged = {}  # id -> the student as last acknowledged
        super().__init__(port, workers, lambda worker: Writer(self, worker),
                         deadline_s=deadline_s, max_requests=max_requests, think_s=think_s)

    def fail(self, what):
        with self.lock:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {what}")

    def percentile(self, p):
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


class Writer:
    """One thread's requests: pages anywhere in the table, reads and changes of the students it
    created and of the old students it owns (id modulo the workers), new ones with an email and,
    once every replica serves it, an enrolled_on; with the load's token."""

    def __init__(self, load, worker):
        self.load, self.worker = load, worker
        self.rng = random.Random(worker)
        self.mine = []
        # Created by the new binary: the only students a client gives a date, so that no row the
        # backfill has to reach gets one from elsewhere, and its count stays exact.
        self.mine_dated = []
        self.serial = 0
        self.op = None

    def next_request(self):
        rng, mine = self.rng, self.mine
        load = self.load
        op = rng.choices(["list", "get", "create", "patch", "patch-old"],
                         weights=[35, 25, 20, 10, 10])[0]
        if op in ("get", "patch") and not mine:
            op = "create"
        if op == "patch-old" and load.seeded < load.workers:
            op = "patch"
        self.op = op
        if op == "list":
            after = rng.randint(0, max(200, load.seeded))
            return "GET", f"/students?limit=5&after_id={after}", None
        if op == "get":
            return "GET", f"/students/{rng.choice(mine)}", None
        if op == "create":
            self.serial += 1
            body = {"first_name": f"W{self.worker}", "last_name": f"N{self.serial}",
                    "major": "Load"}
            body["email"] = f"w{self.worker}.n{self.serial}@example.org"
            if load.dated and self.serial % 2:
                body["enrolled_on"] = f"20{10 + self.serial % 15}-0{1 + self.serial % 9}-1{self.serial % 10}"
            return "POST", "/students", body
        if op == "patch-old":
            # An old student this thread owns, while the backfill may be changing its batch.
            sid = rng.randrange(self.worker + load.workers, load.seeded + 1, load.workers)
            return "PATCH", f"/students/{sid}", {"major": f"Changed {self.serial}"}
        body = {"major": f"Changed {self.serial}"}
        if load.dated and self.mine_dated and rng.random() < 0.5:
            body["enrolled_on"] = f"2019-0{1 + self.serial % 9}-2{self.serial % 8}"
            return "PATCH", f"/students/{rng.choice(self.mine_dated)}", body
        return "PATCH", f"/students/{rng.choice(mine)}", body

    def headers(self):
        return self.load.authorization

    def failed(self, sent, error):
        method, path, _, _ = sent
        self.load.fail(f"{method} {path}: no answer: {error!r}")

    def answered(self, sent, answer):
        method, path, body, _ = sent
        status, _, student, raw, elapsed = answer
        load = self.load
        with load.lock:
            load.by_op[self.op] = load.by_op.get(self.op, 0) + 1
            load.latencies.append(elapsed)
            if elapsed > load.slowest[0]:
                load.slowest = (elapsed, f"{method} {path}")
        if not 200 <= status < 300:
            load.fail(f"{method} {path}: {status} {raw[:200]!r}")
            return
        if method in ("POST", "PATCH"):
            if body.get("email") and student.get("email") != body["email"]:
                load.fail(f"{method} {path}: email sent, not served back: {student}")
            if body.get("enrolled_on") and student.get("enrolled_on") != body["enrolled_on"]:
                load.fail(f"{method} {path}: enrolled_on sent, not served back: {student}")
            with load.lock:
                load.acknowledged[student["id"]] = student
                if body.get("enrolled_on"):
                    load.dated_ids.add(student["id"])
            if method == "POST":
                self.mine.append(student["id"])
                if "enrolled_on" in student:
                    self.mine_dated.append(student["id"])


def roll(replicas, haproxy, load, binary, config, pooled, drain):
    """Replaces each replica with `binary`, one by one, as a Deployment's rollout does: SIGTERM,
    HAProxy takes it out while it drains, it exits 0, the new one starts on its port and is UP."""
    for replica in replicas:
        log(f"{replica.name}: SIGTERM to the old binary (drains {drain} s)")
        saw_down = threading.Event()

        def watch(name=replica.name, seen=saw_down):
            try:
                haproxy.wait_for(name, "DOWN", drain + 5)
                seen.set()
            except RuntimeError:
                pass

        watcher = threading.Thread(target=watch)
        watcher.start()
        status = replica.stop()
        watcher.join()
        if status != 0:
            load.fail(f"{replica.name}: the old binary exited {status} on SIGTERM")
        if not saw_down.is_set():
            load.fail(f"{replica.name}: HAProxy did not take it out while it drained")
        replica.start("new", binary, config, pooled, ROCKET_PREPARED_STATEMENTS=STATEMENTS)
        haproxy.wait_for(replica.name, "UP", 30)
        log(f"{replica.name}: the new binary is UP")


def column_problems(url, column, acknowledged):
    """Students whose `column` is not stored as `acknowledged` ({id: value}) says."""
    if not acknowledged:
        return []
    rows = psql(
        url,
        f"SELECT id || ' ' || {column} FROM student WHERE id IN "
        f"({','.join(str(i) for i in acknowledged)})",
    )
    stored = dict(line.split(" ", 1) for line in rows.splitlines())
    return [
        f"student {sid}: {column} {value} acknowledged, {stored.get(str(sid))} stored"
        for sid, value in acknowledged.items()
        if stored.get(str(sid)) != value
    ]


def missing_writes(url, acknowledged):
    """Acknowledged writes the table does not hold as acknowledged."""
    if not acknowledged:
        return []
    ids = ",".join(str(i) for i in acknowledged)
    stored = {}
    rows = psql(
        url,
        "SELECT json_build_object('id', id, 'first_name', first_name, 'last_name', last_name, "
        f"'major', major) FROM student WHERE id IN ({ids})",
    )
    for line in rows.splitlines():
        row = json.loads(line)
        stored[row["id"]] = row
    problems = []
    for sid, student in sorted(acknowledged.items()):
        want = {k: student[k] for k in ("id", "first_name", "last_name", "major")}
        if stored.get(sid) != want:
            problems.append(f"student {sid}: acknowledged {want}, stored {stored.get(sid)}")
    # The enrolled_on each acknowledgement served: sent, or the default, or for an old row not
    # backfilled yet the day it was created, which the backfill then stored.
    days = {sid: s["enrolled_on"] for sid, s in acknowledged.items() if "enrolled_on" in s}
    emails = {sid: s["email"] for sid, s in acknowledged.items() if s.get("email")}
    for column, values in (("enrolled_on", days), ("email", emails)):
        problems += column_problems(url, column, values)
    return problems


# With PGBOUNCER_ROOT (scripts/debian13-root.sh) the replicas go through PgBouncer 1.24 with
# max_prepared_statements, and keep diesel's prepared statements, as the Kubernetes Deployment
# does; through Debian 12's 1.18 they cannot.
STATEMENTS = "true" if os.environ.get("PGBOUNCER_ROOT") else "false"

# Each binary's own Rocket.toml, as each release ships with the configuration it reads: an older
# binary may not read a newer file (a setting's type changed, say).
CONFIGS = {}


def own_config(binary):
    return {"ROCKET_CONFIG": CONFIGS[binary]} if binary in CONFIGS else {}


def bearer(binary, url):
    """The header of a new token, made as an operator would, with `students-api token create`."""
    log("$ students-api token create rolling-upgrade")
    token = common.create_token(binary, url, "rolling-upgrade", env=own_config(binary))
    return {"Authorization": f"Bearer {token}"}


def migrate(binary, url, *args):
    """Runs `students-api migrate ARGS`, logged; its output lines."""
    return common.migrate(binary, url, *args, log=log, env=own_config(binary))


def migrate_killed_mid_backfill(binary, url, timeout=120):
    """Runs `students-api migrate run` and sends it SIGKILL once the backfill has logged progress
    (rows changed in batches, with more to come), as a deploy timeout or a lost node would."""
    log("$ students-api migrate run   # SIGKILL once the backfill has logged progress")
    proc = subprocess.Popen(
        [binary, "migrate", "run"],
        env=dict(os.environ, **own_config(binary), DATABASE_URL=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:
            log(f"    {line.rstrip()}")
            if "_backfill_" in line and "rows changed in" in line:
                proc.kill()
                log("    SIGKILL")
                break
        else:
            raise RuntimeError("migrate run ended before the backfill logged progress")
    finally:
        killer.cancel()
        proc.wait()
        proc.stdout.close()


def seed(url, rows):
    """`rows` students created over the past years, as an old table holds them."""
    log(f"seeding {rows:,} students")
    psql(
        url,
        "INSERT INTO student (first_name, last_name, major, email, created_at, updated_at) "
        "SELECT 'Old' || n, 'Student' || n, 'Major ' || (n % 40), 'old' || n || '@example.org', "
        "now() - n * interval '7 minutes 13 seconds', now() - n * interval '7 minutes 13 seconds' "
        f"FROM generate_series(1, {rows}) AS n; ANALYZE student;",
    )
    return int(psql(url, "SELECT max(id) FROM student"))


def end_state_problems(url, dated_ids, left_at_kill, rerun_lines):
    """What is wrong with the table and the backfill's runs once every migration is applied."""
    problems = []
    changed = [line for line in rerun_lines if "_backfill_" in line and "no row left" in line]
    if not changed:
        problems.append("the second migrate run logged no end of the backfill")
    else:
        rows = int(changed[0].split("no row left to change: ")[1].split(" rows")[0].replace(",", ""))
        log(f"the killed run left {left_at_kill:,} rows without a date; the second run changed {rows:,}")
        if rows != left_at_kill:
            problems.append(f"the second backfill run changed {rows} rows, "
                            f"{left_at_kill} were left without a date")
    if left_at_kill == 0:
        problems.append("the killed backfill had finished: the kill proved nothing")
    dated = ",".join(str(i) for i in dated_ids) or "0"
    wrong = psql(
        url,
        "SELECT count(*) FROM student WHERE enrolled_on IS DISTINCT FROM "
        f"(created_at AT TIME ZONE 'UTC')::date AND id NOT IN ({dated})",
    )
    if wrong != "0":
        problems.append(f"{wrong} students without a date sent hold another than their creation day")
    shape = psql(
        url,
        "SELECT attnotnull || ' ' || "
        "(SELECT count(*) FROM pg_constraint WHERE conname = 'student_enrolled_on_not_null') || ' ' || "
        "(to_regclass('student_enrolled_on_missing_idx') IS NULL) "
        "FROM pg_attribute WHERE attrelid = 'student'::regclass AND attname = 'enrolled_on'",
    )
    if shape != "true 0 true":
        problems.append(f"enrolled_on NOT NULL, CHECKs left, index gone: {shape}, not true 0 true")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the previous binary")
    parser.add_argument("--old-config", required=True, help="its Rocket.toml")
    parser.add_argument("--new", required=True, help="the binary rolled out")
    parser.add_argument("--new-config", required=True, help="its Rocket.toml")
    parser.add_argument("--next", help="the release after it, rolled out once it has finished")
    parser.add_argument("--next-config", help="its Rocket.toml")
    parser.add_argument("--workdir", required=True, help="logs and HAProxy's configuration")
    parser.add_argument("--negative-control", action="store_true")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument(
        "--drain", type=int, default=3, help="the replicas' shutdown_drain, in seconds"
    )
    parser.add_argument("--latency-bound", type=float, default=1.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=60000)
    parser.add_argument("--deadline", type=float, default=180, help="seconds of load at most")
    parser.add_argument("--rows", type=int, default=200_000, help="old students to backfill")
    args = parser.parse_args()

    server_url = os.environ["DATABASE_URL"]
    database = f"rolling_upgrade_{os.getpid()}"
    psql(server_url, f"CREATE DATABASE {database}")
    url = with_database(server_url, database)
    os.makedirs(args.workdir, exist_ok=True)
    replicas, haproxy, load, bouncer = [], None, None, None
    stayed_ready = []
    seeded, left_at_kill, rerun_lines = 0, 0, []
    try:
        # Request pools go through PgBouncer in transaction mode, as in the Kubernetes topology;
        # migrations and tokens over the direct URL.
        bouncer = PgBouncer(server_url, tempfile.mkdtemp(prefix="rolling-pgbouncer-"))
        pooled = bouncer.url(database)
        version = "1.24, statements kept" if STATEMENTS == "true" else "1.18, statements off"
        log(f"PgBouncer {version} (transaction pooling, 2 server connections) "
            f"on 127.0.0.1:{bouncer.port}")
        # The negative control serves with this binary, whose /ready sees the drift.
        CONFIGS.update({args.old: args.old_config, args.new: args.new_config})
        if args.next:
            CONFIGS[args.next] = args.next_config
        first, first_config = args.old, args.old_config
        if args.negative_control:
            first, first_config = (args.next, args.next_config) if args.next else (
                args.new, args.new_config)
        migrate(first, url, "run")
        if not args.negative_control:
            seeded = seed(url, args.rows)
        replicas = [
            Replica(f"r{n}", free_port(), args.workdir, args.drain) for n in (1, 2, 3)
        ]
        for replica in replicas:
            replica.start("old", first, first_config, pooled, ROCKET_PREPARED_STATEMENTS=STATEMENTS)
        haproxy = Haproxy(replicas, args.workdir)
        for replica in replicas:
            haproxy.wait_for(replica.name, "UP", 60)
        log(f"3 old replicas UP behind HAProxy on 127.0.0.1:{haproxy.frontend}")

        load = Load(haproxy.frontend, args.workers, args.deadline, args.max_requests, 0.01, seeded)
        load.authorization = bearer(first, url)
        load.start()
        time.sleep(2)

        if args.negative_control:
            log("negative control: renaming student.major in one step, under the serving binary")
            psql(
                url,
                "BEGIN; SET LOCAL lock_timeout = '5s'; "
                "ALTER TABLE student RENAME COLUMN major TO field_of_study; COMMIT;",
            )
            for replica in replicas:
                try:
                    haproxy.wait_for(replica.name, "DOWN", 10)
                    log(f"{replica.name}: unready on the drifted schema, HAProxy took it out")
                except RuntimeError as err:
                    stayed_ready.append(str(err))
            time.sleep(1)
        else:
            migrate(args.new, url, "run", "--skip-post-deploy")
            time.sleep(1)
            roll(replicas, haproxy, load, args.new, args.new_config, pooled, args.drain)
            load.dated = True
            log("every replica serves enrolled_on: clients send it too")
            time.sleep(1)
            migrate_killed_mid_backfill(args.new, url)
            left_at_kill = int(psql(url, "SELECT count(*) FROM student WHERE enrolled_on IS NULL"))
            time.sleep(1)
            rerun_lines = migrate(args.new, url, "run")
            time.sleep(2)
            anonymous = common.request(haproxy.frontend, "POST", "/students",
                                       {"first_name": "No", "last_name": "Token", "major": "X"})
            if anonymous[0] != 401:
                load.fail(f"a write without a token through the new replicas: {anonymous[0]}")
            if args.next:
                # The next release's expand steps wait for this one's contract steps, done now.
                log("the next release: its migrations, then every replica replaced again")
                migrate(args.next, url, "run", "--skip-post-deploy")
                time.sleep(1)
                roll(replicas, haproxy, load, args.next, args.next_config, pooled, args.drain)
                migrate(args.next, url, "run")
                time.sleep(2)
        load.finish()
    finally:
        if load is not None:
            load.finish()
        if haproxy is not None:
            haproxy.stop()
        running = [r.proc for r in replicas if r.proc and r.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=args.drain + 20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if bouncer is not None:
            bouncer.stop()
    problems = list(load.failures)
    logins = bouncer.logins(database)
    shutil.rmtree(bouncer.dir, ignore_errors=True)
    log(f"PgBouncer logged {logins} client connections to {database}")
    if not args.negative_control and logins == 0:
        problems.append("no replica connected through PgBouncer")
    try:
        problems += missing_writes(url, load.acknowledged)
        if not args.negative_control:
            problems += end_state_problems(url, load.dated_ids, left_at_kill, rerun_lines)
    except RuntimeError as err:
        problems.append(f"cannot read the table back: {err}")
    psql(server_url, f"DROP DATABASE {database} WITH (FORCE)")

    total = len(load.latencies)
    slowest, slowest_request = load.slowest
    log(
        f"{total} answers ({', '.join(f'{k} {v}' for k, v in sorted(load.by_op.items()))}), "
        f"{len(load.acknowledged)} students written; latency p50 "
        f"{load.percentile(0.5) * 1000:.0f} ms, p99 {load.percentile(0.99) * 1000:.0f} ms, "
        f"max {slowest * 1000:.0f} ms ({slowest_request})"
    )
    if slowest > args.latency_bound:
        problems.append(
            f"{slowest_request} took {slowest:.2f} s, over the {args.latency_bound} s bound"
        )
    if total < 200 or not load.acknowledged:
        problems.append(f"too little load to prove anything: {total} answers")
    emails = sum(1 for student in load.acknowledged.values() if student.get("email"))
    if not args.negative_control and not emails:
        problems.append("no student was written with an email")

    def show(header, most):
        log(f"{header} ({len(problems)} problems, logs in {args.workdir}):")
        for problem in problems[:most]:
            log(f"    {problem}")

    if args.negative_control:
        # Failed requests, specifically: what the rename must cause; and replicas that know it.
        if stayed_ready:
            log("FAIL: replicas stayed ready on a schema that breaks their every query:")
            for line in stayed_ready:
                log(f"    {line}")
            return 1
        if load.failures:
            show("negative control: the checks failed, as they must", 5)
            return 0
        log("FAIL: the negative control passed: these checks cannot tell a breaking migration")
        return 1
    if problems:
        show("FAIL", 30)
        return 1
    log("ok: no failed request, every acknowledged write stored, latency within the bound"
        + ("" if args.negative_control else ", the backfill resumed exactly, every old row dated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
