#!/usr/bin/env python3
"""Fault tests: the real service against a real PostgreSQL that the harness stops, restarts,
locks and starves. Run by scripts/fault-tests.sh, which builds the service and owns the cluster.

Each scenario prints PASS or FAIL with the reasons; the exit status is 1 if any failed.
Standard library only.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import common
from common import free_port

SERVICE = os.environ["SERVICE_BIN"]
DB_URL = os.environ["FAULT_DATABASE_URL"]
PG_STOP = os.environ["PG_STOP"]      # a command that stops the cluster (fast mode)
PG_START = os.environ["PG_START"]    # a command that starts it and waits until it accepts
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
POOL_TIMEOUT = 2                     # seconds; the service's pool timeout in these scenarios


def psql(sql):
    return common.psql(DB_URL, sql)


def request(port, method, path, body=None, timeout=10):
    """One request; (status, headers, JSON body or None)."""
    return common.request(port, method, path, body, timeout)[:3]


class Service:
    """The binary on a free port, with a small pool so the scenarios can exhaust it."""

    def __init__(self, pool_size=8, extra_env=None):
        self.port = free_port()
        env = dict(os.environ,
                   DATABASE_URL=DB_URL,
                   ROCKET_PORT=str(self.port),
                   ROCKET_ADDRESS="127.0.0.1",
                   ROCKET_LOG_LEVEL="normal",
                   ROCKET_CLI_COLORS="false",
                   ROCKET_DATABASES="{students={pool_size=%d,timeout=%d}}" % (pool_size, POOL_TIMEOUT))
        env.update(extra_env or {})
        self.log_path = f"/tmp/fault-service-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([SERVICE], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def wait_ready(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if request(self.port, "GET", "/ready", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def output(self):
        with open(self.log_path) as f:
            return f.read()


class Load(common.Load):
    """Client threads sending a mix of POST and GET until stopped, recording every answer in
    `records`. Bounded beyond any scenario's length, in case one never stops it."""

    def __init__(self, port, threads, write_every=2):
        self.records = []
        self.authorization = {"Authorization": f"Bearer {token()}"}
        super().__init__(port, threads, lambda tid: Mix(self, tid, write_every),
                         deadline_s=SOAK_SECONDS + 120, max_requests=2_000_000, timeout=15)


class Mix:
    """One thread's requests: every `write_every`-th a POST of a uniquely named student, the
    others a page of five."""

    def __init__(self, load, tid, write_every):
        self.load, self.tid, self.write_every, self.n = load, tid, write_every, 0

    def headers(self):
        return self.load.authorization

    def next_request(self):
        self.n += 1
        self.name = f"Fault{self.tid}x{self.n}"
        if self.n % self.write_every == 0:
            return "POST", "/students", {"first_name": self.name, "last_name": "Load",
                                         "major": "Faults"}
        return "GET", "/students?limit=5", None

    def record(self, sent, status, headers, body, error):
        method, _, _, started = sent
        with self.load.lock:
            self.load.records.append(dict(write=method == "POST", name=self.name, started=started,
                                          ended=time.time(), status=status, headers=headers,
                                          body=body, error=error))

    def answered(self, sent, answer):
        status, headers, body, _, _ = answer
        self.record(sent, status, headers, body, None)

    def failed(self, sent, error):
        self.record(sent, None, {}, None, repr(error))


_token = []


def token():
    """The scenarios' token, made once the first service has migrated the database."""
    if not _token:
        _token.append(common.create_token(SERVICE, DB_URL, f"faults-{os.getpid()}"))
    return _token[0]


def check(failures, condition, message):
    if not condition:
        failures.append(message)


def stored_names():
    return set(psql("SELECT first_name FROM student WHERE last_name = 'Load'").splitlines())


def scenario_restart_under_load():
    failures = []
    service = Service()
    try:
        check(failures, service.wait_ready(), "service did not start")
        with Load(service.port, threads=16) as load:
            time.sleep(2)
            down = time.time()
            subprocess.run(PG_STOP, shell=True, check=True)
            stopped = time.time()
            time.sleep(4)
            subprocess.run(PG_START, shell=True, check=True)
            up = time.time()
            time.sleep(4)
        records = load.records
        check(failures, all(r["error"] is None for r in records),
              f"client errors: {[r['error'] for r in records if r['error']][:3]}")
        statuses = {r["status"] for r in records}
        check(failures, statuses <= {200, 201, 503}, f"unexpected statuses {statuses}")
        unavailable = [r for r in records if r["status"] == 503]
        check(failures, len(unavailable) > 0, "the outage was never seen")
        for r in unavailable:
            if not (isinstance(r["body"], dict) and "detail" in r["body"] and "retry-after" in r["headers"]):
                failures.append(f"503 without JSON detail and Retry-After: {r['headers']} {r['body']}")
                break
        slow = [r for r in records if stopped <= r["started"] <= up and r["ended"] - r["started"] > POOL_TIMEOUT + 1.5]
        check(failures, not slow, f"{len(slow)} requests took longer than the pool timeout while the database was down "
                                  f"(slowest {max((r['ended'] - r['started'] for r in slow), default=0):.1f}s)")
        late = [r for r in records if r["started"] > up + 2 and r["status"] != (201 if r["write"] else 200)]
        check(failures, not late, f"{len(late)} requests still failed more than 2 s after the database came back")
        recovered = [r["ended"] - up for r in records if r["ended"] > up and r["status"] in (200, 201)]
        check(failures, recovered and min(recovered) <= 2, "no success within 2 s of the database coming back")
        names = stored_names()
        acknowledged = {r["name"] for r in records if r["write"] and r["status"] == 201}
        refused = {r["name"] for r in records if r["write"] and r["status"] != 201}
        check(failures, acknowledged <= names, f"{len(acknowledged - names)} acknowledged writes are missing")
        check(failures, not (refused & names), f"{len(refused & names)} refused writes were stored anyway")
        summary = (f"{len(records)} requests; database down for {up - down:.1f}s, {len(unavailable)} answered 503 "
                   f"meanwhile; first success {min(recovered, default=-1):.2f}s after it came back; "
                   f"{len(acknowledged)} writes acknowledged, all stored")
    finally:
        service.stop()
    return failures, summary


def scenario_start_while_database_is_down():
    failures = []
    subprocess.run(PG_STOP, shell=True, check=True)
    try:
        started = time.time()
        gives_up = Service(extra_env={"ROCKET_DATABASE_WAIT": "3"})
        code = gives_up.proc.wait(30)
        took = time.time() - started
        out = gives_up.output()
        gives_up.stop()
        check(failures, code != 0, f"exit status {code} without a database")
        check(failures, 2.5 <= took <= 15, f"gave up after {took:.1f}s with database_wait = 3")
        attempts = out.count("database not reachable (attempt")
        check(failures, attempts >= 3, f"{attempts} attempts logged")
        check(failures, "gave up on the database after" in out, "no clear final message")

        patient = Service(extra_env={"ROCKET_DATABASE_WAIT": "30"})
        time.sleep(2)
        subprocess.run(PG_START, shell=True, check=True)
        check(failures, patient.wait_ready(30), "did not start once the database appeared")
        check(failures, "connected to the database on attempt" in patient.output(), "no log of the reconnect")
        patient.stop()
    finally:
        subprocess.run(PG_START + " || true", shell=True)
    return failures, f"gave up after {took:.1f}s and {attempts} attempts; started once the database appeared"


class TableLock:
    """Holds ACCESS EXCLUSIVE on student from a psql session, so queries on it wait."""

    def __enter__(self):
        self.proc = subprocess.Popen(["psql", "--no-psqlrc", "-q", DB_URL], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.proc.stdin.write("BEGIN;\nLOCK TABLE student IN ACCESS EXCLUSIVE MODE;\n")
        self.proc.stdin.flush()
        deadline = time.time() + 10
        while time.time() < deadline:
            if psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'student' AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1":
                return self
            time.sleep(0.05)
        raise RuntimeError("could not lock student")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n\\q\n")
            self.proc.stdin.close()
            self.proc.wait(10)

    def __exit__(self, *exc):
        self.release()


def in_parallel(count, fn):
    results = [None] * count

    def run(i):
        started = time.time()
        try:
            results[i] = (fn(), time.time() - started)
        except Exception as exc:  # noqa: BLE001 - recorded as a failure below
            results[i] = ((None, {}, repr(exc)), time.time() - started)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return threads, results


def scenario_pool_exhausted():
    failures = []
    service = Service(pool_size=3)
    try:
        check(failures, service.wait_ready(), "service did not start")
        with TableLock() as lock:
            threads, results = in_parallel(9, lambda: request(service.port, "GET", "/students", timeout=20))
            time.sleep(POOL_TIMEOUT + 1.5)
            lock.release()
            for t in threads:
                t.join(30)
        statuses = sorted(r[0][0] for r in results)
        check(failures, statuses.count(200) == 3, f"statuses {statuses}: expected 3 served once the lock went")
        check(failures, statuses.count(503) == 6, f"statuses {statuses}: expected 6 answered 503")
        for (status, hdrs, body), took in results:
            if status == 503:
                check(failures, hdrs.get("retry-after") == "1", f"503 without Retry-After: {hdrs}")
                check(failures, took <= POOL_TIMEOUT + 1.5, f"a 503 took {took:.1f}s, pool timeout {POOL_TIMEOUT}s")
        after = [request(service.port, "GET", "/students")[0] for _ in range(20)]
        check(failures, after == [200] * 20, f"not recovered: {after}")
    finally:
        service.stop()
    return failures, f"9 requests on a pool of 3: {statuses}; then 20 of 20 served"


def scenario_sigterm_under_load():
    failures = []
    service = Service()
    try:
        check(failures, service.wait_ready(), "service did not start")
        with TableLock() as lock:
            threads, results = in_parallel(4, lambda: request(service.port, "GET", "/students", timeout=20))
            time.sleep(0.5)
            service.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            check(failures, service.proc.poll() is None, "exited before its in-flight requests finished")
            lock.release()
            for t in threads:
                t.join(30)
        code = service.proc.wait(30)
        statuses = [r[0][0] for r in results]
        check(failures, statuses == [200] * 4, f"in-flight requests answered {statuses}")
        check(failures, code == 0, f"exit status {code}")
    finally:
        service.stop()
    return failures, f"4 in-flight requests answered {statuses}; exit status {code}"


def scenario_soak():
    failures = []
    service = Service(pool_size=8)
    try:
        check(failures, service.wait_ready(), "service did not start")
        before = int(psql("SELECT count(*) FROM student"))
        load = Load(service.port, threads=32, write_every=4)
        with load:
            time.sleep(SOAK_SECONDS)
        records = load.records
        errors = [r for r in records if r["error"] is not None or r["status"] >= 500]
        check(failures, not errors, f"{len(errors)} errors or 5xx, e.g. {errors[:1]}")
        acknowledged = sum(1 for r in records if r["write"] and r["status"] == 201)
        after = int(psql("SELECT count(*) FROM student"))
        check(failures, after - before == acknowledged,
              f"{after - before} rows added, {acknowledged} writes acknowledged")
    finally:
        service.stop()
    return failures, (f"{len(records)} requests in {SOAK_SECONDS:.0f}s at 32 connections, "
                      f"{acknowledged} writes acknowledged = rows added, 0 errors")


def main():
    scenarios = [
        ("PostgreSQL restarted under load", scenario_restart_under_load),
        ("started while PostgreSQL is down", scenario_start_while_database_is_down),
        ("pool exhausted", scenario_pool_exhausted),
        ("SIGTERM under load", scenario_sigterm_under_load),
        ("soak, reads and writes at 32 connections", scenario_soak),
    ]
    only = set(sys.argv[1:])
    failed = 0
    for name, scenario in scenarios:
        if only and scenario.__name__.removeprefix("scenario_") not in only:
            continue
        started = time.time()
        try:
            failures, summary = scenario()
        except Exception as exc:  # noqa: BLE001 - a crash of the scenario is a failure
            failures, summary = [repr(exc)], "crashed"
        verdict = "PASS" if not failures else "FAIL"
        print(f"{verdict} {name} ({time.time() - started:.1f}s): {summary}", flush=True)
        for failure in failures:
            print(f"     - {failure}", flush=True)
        failed += bool(failures)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
