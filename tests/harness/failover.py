"""The service through a database failover (scripts/failover-test.sh): a Patroni cluster of two
PostgreSQL members in synchronous mode, with etcd and HAProxy, all from Debian's packages on
loopback; the service behind HAProxy, as docs/operations.md ("Highly available PostgreSQL")
deploys it.

Eight clients POST students with unique names, each with its name as Idempotency-Key, and retry
every answer that is not final (no answer, 409, 503) with the same key. Some answers are lost on
purpose: the client closes its connection right after sending, as a timeout or a dropped
connection would, and retries. Each fault is injected once under that load:

- kill: the leader's postmaster is SIGKILLed (`primary_start_timeout: 0`, so Patroni fails over
  rather than restarting it in place);
- freeze: the leader's Patroni and PostgreSQL are SIGSTOPped, then resumed once the other member
  leads.

Each must leave: every acknowledged write stored (checked by its unique name, not its id: a new
leader that lost writes hands their ids out again), none stored twice, no 500, writes served
again within 30 s of the fault, and the old leader back as a replica.

Negative controls, each of which must fail those checks:
- asynchronous replication, the WAL sender paused for a second, then the leader crashes: the
  acknowledged writes the replica never received are lost;
- the same lost answers retried without a key: students stored twice.

    scripts/failover-test.sh                  # all of it
    scripts/failover-test.sh kill keyless     # some scenarios: kill, freeze, keyless, async
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from common import free_port, psql, wait_ready, create_token  # noqa: E402

BINARY = os.environ.get("STUDENTS_API", "target/debug/students-api")
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
RUN_AS = os.environ.get("PG_RUN_AS", "postgres")
PASSWORD = "failover"
WORKERS = 8
RECOVERY_LIMIT_S = 30
FAILURES = []


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(ok, what):
    log(("ok: " if ok else "FAILED: ") + what)
    if not ok:
        FAILURES.append(what)
    return ok


def as_postgres(argv):
    """`argv` as the postgres account (PostgreSQL and Patroni refuse root); setpriv execs, so the
    process started is `argv` itself."""
    if os.getuid() != 0:
        return argv
    return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--", *argv]


def rest(port, method, path, body=None, timeout=2):
    """A request to a Patroni REST API: (status, parsed JSON or None); (None, None) without an
    answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw) if raw else None
        except ValueError:
            return err.code, None
    except (OSError, ValueError):
        return None, None


class Cluster:
    """etcd, two Patroni members and HAProxy, in `work`."""

    def __init__(self, work):
        self.work = work
        self.procs = {}
        self.etcd_port, self.etcd_peer = free_port(), free_port()
        self.members = []
        for n in range(2):
            self.members.append({
                "name": f"pg{n}",
                "pg_port": free_port(),
                "rest_port": free_port(),
                "data": os.path.join(work, "members", f"pg{n}"),
            })
        self.haproxy_port = free_port()
        self.haproxy_stats = free_port()

    def start(self):
        members_dir = os.path.join(self.work, "members")
        os.makedirs(members_dir)
        shutil.chown(members_dir, RUN_AS, RUN_AS) if os.getuid() == 0 else None
        self.spawn("etcd", [
            "etcd", "--name", "etcd0", "--data-dir", os.path.join(self.work, "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
            "--initial-cluster", f"etcd0=http://127.0.0.1:{self.etcd_peer}",
            # Patroni's `etcd:` (v2) client: deploy/patroni/patroni.yml says why not etcd3.
            "--enable-v2=true",
        ])
        wait_for(lambda: port_open(self.etcd_port), 30, "etcd listening")
        # The first member bootstraps and leads; the second then clones it.
        for member in self.members:
            self.start_member(member)
            wait_for(lambda: self.role(member) in ("primary", "replica"), 90,
                     f"{member['name']} running")
        wait_for(lambda: self.sync_standby() is not None, 60, "a synchronous standby")
        self.write_haproxy()
        self.spawn("haproxy", ["haproxy", "-f", os.path.join(self.work, "haproxy.cfg")])
        # HAProxy starts with every server up until its checks say otherwise: only once several
        # connections in a row (round robin) reached the leader has it marked the replica down.
        leading = lambda: all(self.through_haproxy("SELECT NOT pg_is_in_recovery()") == "t"
                              for _ in range(6))
        wait_for(leading, 30, "HAProxy routing to the leader only")

    def config(self, member):
        path = os.path.join(self.work, f"{member['name']}.yml")
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "patroni",
                               "patroni.yml")) as template:
            text = template.read()
        text = (text
                .replace("{{name}}", member["name"])
                .replace("{{rest_port}}", str(member["rest_port"]))
                .replace("{{pg_port}}", str(member["pg_port"]))
                .replace("{{etcd}}", f"127.0.0.1:{self.etcd_port}")
                .replace("{{data_dir}}", member["data"])
                .replace("{{bin_dir}}", PG_BIN)
                .replace("{{pgpass}}", os.path.join(self.work, "members", member["name"] + ".pgpass"))
                .replace("{{superuser_password}}", PASSWORD)
                .replace("{{replication_password}}", PASSWORD))
        with open(path, "w") as out:
            out.write(text)
        os.chmod(path, 0o644)
        return path

    def start_member(self, member):
        self.spawn(member["name"], as_postgres(["patroni", self.config(member)]))

    def write_haproxy(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "patroni",
                               "haproxy.cfg")) as template:
            text = template.read()
        servers = "\n".join(
            f"    server {m['name']} 127.0.0.1:{m['pg_port']} check port {m['rest_port']}"
            for m in self.members)
        # Only the placeholders' own lines: the comments name them too.
        text = (text.replace("bind {{listen}}", f"bind 127.0.0.1:{self.haproxy_port}")
                .replace("\n{{servers}}", "\n" + servers))
        with open(os.path.join(self.work, "haproxy.cfg"), "w") as out:
            out.write(text)

    def spawn(self, name, argv):
        logfile = open(os.path.join(self.work, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(
            argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.work)

    def url(self, database="postgres", port=None):
        return f"postgres://postgres:{PASSWORD}@127.0.0.1:{port or self.haproxy_port}/{database}"

    def through_haproxy(self, sql, database="postgres"):
        try:
            return psql(self.url(database) + "?connect_timeout=2", sql)
        except RuntimeError:
            return None

    def role(self, member):
        status, body = rest(member["rest_port"], "GET", "/patroni")
        if status is None or body is None:
            return None
        if body.get("state") != "running":
            return body.get("state")
        return body.get("role") if body.get("role") != "master" else "primary"

    def leader(self):
        for member in self.members:
            if rest(member["rest_port"], "OPTIONS", "/primary")[0] == 200:
                return member
        return None

    def sync_standby(self):
        for member in self.members:
            if rest(member["rest_port"], "OPTIONS", "/sync")[0] == 200:
                return member
        return None

    def postgres_pids(self, member):
        """The member's postmaster and its children."""
        try:
            with open(os.path.join(member["data"], "postmaster.pid")) as pidfile:
                postmaster = int(pidfile.readline())
        except (OSError, ValueError):
            return []
        return [postmaster] + children(postmaster)

    def set_config(self, **settings):
        leader = self.leader()
        status, _ = rest(leader["rest_port"], "PATCH", "/config", settings)
        check(status == 200, f"Patroni's configuration changed to {settings}")

    def stop(self):
        # The leader first: stopping a replica first makes the leader wait for it.
        order = []
        leader = self.leader()
        if leader:
            order.append(leader["name"])
        order += [m["name"] for m in self.members if m["name"] not in order]
        for name in ["haproxy"] + order + ["etcd"]:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            # A member's processes may have been left stopped by a failed run.
            for member in self.members:
                if member["name"] == name:
                    for pid in self.postgres_pids(member) + [proc.pid]:
                        signal_quietly(pid, signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for member in self.members:
            for pid in self.postgres_pids(member):
                signal_quietly(pid, signal.SIGKILL)


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def process_title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def signal_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {seconds} s waiting for {what}")


class Writers:
    """`WORKERS` clients POSTing students named `<prefix>-<worker>-<n>`, each write retried until
    it gets a final answer. With `keyed`, the name is its Idempotency-Key too. Every `lose_every`
    th write first loses its answer: the client sends it and closes the connection."""

    def __init__(self, port, token, prefix, keyed=True, lose_every=25, retry_for_s=60):
        self.port, self.token, self.prefix = port, token, prefix
        self.keyed, self.lose_every, self.retry_for_s = keyed, lose_every, retry_for_s
        self.lock = threading.Lock()
        self.acked = {}        # name -> id
        self.statuses = {}     # status -> count, every answer
        self.given_up = []
        self.lost_on_purpose = 0
        self.ack_times = []
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True)
                        for w in range(WORKERS)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def finish(self):
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(timeout=self.retry_for_s + 30)

    def count(self, status):
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def request(self, name, lose):
        body = json.dumps({"first_name": name, "last_name": "Failover", "major": "Resilience"})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        if self.keyed:
            headers["Idempotency-Key"] = name
        if lose:
            # Sent whole, then the connection closed before the answer is read.
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                sock.sendall((f"POST /students HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                              f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
            with self.lock:
                self.lost_on_purpose += 1
            time.sleep(0.05)
            return None, None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("POST", "/students", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, raw
        finally:
            conn.close()

    def run(self, worker):
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            name = f"{self.prefix}-{worker}-{n}"
            lose = self.lose_every and n % self.lose_every == 0
            started = time.monotonic()
            while True:
                try:
                    status, raw = self.request(name, lose)
                except (OSError, http.client.HTTPException):
                    status, raw = None, None
                lose = False
                self.count(status)
                if status is not None and status not in (409, 503):
                    break
                if time.monotonic() - started > self.retry_for_s:
                    with self.lock:
                        self.given_up.append(name)
                    status = None
                    break
                time.sleep(0.2)
            if status == 201:
                with self.lock:
                    self.acked[name] = json.loads(raw)["id"]
                    self.ack_times.append(time.time())

    def first_ack_after(self, moment):
        with self.lock:
            later = [t for t in self.ack_times if t > moment]
        return min(later) - moment if later else None

    def longest_pause_after(self, moment):
        """The longest time without an acknowledged write from `moment` on: how long writes
        stopped. None when none was acknowledged after it."""
        with self.lock:
            later = sorted(t for t in self.ack_times if t > moment)
        if not later:
            return None
        return max(b - a for a, b in zip([moment] + later, later))


def stored(cluster, prefix):
    """name -> how many students have it, read from the leader."""
    rows = cluster.through_haproxy(
        f"SELECT first_name, count(*) FROM student WHERE first_name LIKE '{prefix}-%' "
        "GROUP BY first_name", database="students")
    if rows is None:
        raise RuntimeError("cannot read the students back through HAProxy")
    counts = {}
    for line in rows.splitlines():
        name, count = line.split("|")
        counts[name] = int(count)
    return counts


def verify(cluster, writers, prefix, fault_at, expect_ok=True):
    """The pass checks of one run; as a negative control (`expect_ok` False), the failures they
    must find. Returns what the checks found."""
    counts = stored(cluster, prefix)
    lost = [name for name in writers.acked if counts.get(name, 0) == 0]
    doubled = [name for name, count in counts.items() if count > 1]
    errors = writers.statuses.get(500, 0)
    recovered = writers.longest_pause_after(fault_at) if fault_at else 0
    log(f"{prefix}: {len(writers.acked)} acknowledged, {writers.lost_on_purpose} answers lost on "
        f"purpose, answers {dict(sorted(writers.statuses.items(), key=str))}, "
        f"{len(lost)} acknowledged and missing, {len(doubled)} stored twice, "
        f"writes stopped for at most {recovered if recovered is None else round(recovered, 1)} s")
    if expect_ok:
        check(len(writers.acked) > 200, f"{prefix}: writes were acknowledged under load")
        check(not lost, f"{prefix}: no acknowledged write lost {lost[:5]}")
        check(not doubled, f"{prefix}: no write stored twice {doubled[:5]}")
        check(errors == 0, f"{prefix}: no 500 ({errors})")
        check(not writers.given_up, f"{prefix}: every write got a final answer {writers.given_up[:5]}")
        if fault_at:
            check(recovered is not None and recovered <= RECOVERY_LIMIT_S,
                  f"{prefix}: writes served again within {RECOVERY_LIMIT_S} s of the fault")
    return lost, doubled


def service(cluster, work, database_url=None):
    """The binary serving `students` through HAProxy; (process, port)."""
    port = free_port()
    env = dict(os.environ,
               DATABASE_URL=database_url or cluster.url("students"),
               ROCKET_PORT=str(port), ROCKET_ADDRESS="127.0.0.1", ROCKET_LOG_LEVEL="normal")
    logfile = open(os.path.join(work, f"service-{port}.log"), "ab")
    proc = subprocess.Popen([BINARY], env=env, stdout=logfile, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    wait_ready(port, 60)
    return proc, port


def load_with_fault(cluster, port, token, prefix, fault, keyed=True, settle_s=5):
    """Writers for `settle_s`, then `fault()`, then until writes have been served for 5 s
    after it (at most 60 s); returns (writers, fault time)."""
    writers = Writers(port, token, prefix, keyed=keyed).start()
    time.sleep(settle_s)
    fault_at = time.time()
    fault()
    deadline = time.monotonic() + 60
    time.sleep(2)
    while time.monotonic() < deadline:
        pause = writers.longest_pause_after(fault_at)
        if pause is not None and writers.first_ack_after(time.time() - 5) is not None \
                and time.time() - fault_at > pause + 5:
            break
        time.sleep(0.5)
    writers.finish()
    return writers, fault_at


def wait_replica(cluster, member, what):
    try:
        wait_for(lambda: cluster.role(member) == "replica"
                 and rest(member["rest_port"], "OPTIONS", "/replica")[0] == 200, 90, what)
        check(True, what)
    except RuntimeError:
        check(False, what)


def scenario_kill(cluster, port, token):
    leader = cluster.leader()
    pids = cluster.postgres_pids(leader)
    log(f"kill: SIGKILL to {leader['name']}'s postmaster ({pids[0]})")
    writers, fault_at = load_with_fault(
        cluster, port, token, "kill", lambda: signal_quietly(pids[0], signal.SIGKILL))
    verify(cluster, writers, "kill", fault_at)
    check(cluster.leader() not in (None, leader), "kill: the other member leads")
    wait_replica(cluster, leader, f"kill: {leader['name']} back as a replica")
    wait_for(lambda: cluster.sync_standby() is not None, 60, "a synchronous standby again")


def scenario_freeze(cluster, port, token):
    leader = cluster.leader()
    patroni = cluster.procs[leader["name"]].pid
    frozen = [patroni] + cluster.postgres_pids(leader)
    log(f"freeze: SIGSTOP to {leader['name']}'s Patroni and PostgreSQL ({len(frozen)} processes)")

    def fault():
        for pid in frozen:
            signal_quietly(pid, signal.SIGSTOP)
        # Resumed once the other member leads, as a paused VM or a partition that heals.
        threading.Thread(target=resume, daemon=True).start()

    def resume():
        try:
            wait_for(lambda: cluster.leader() not in (None, leader), 60, "a new leader")
        except RuntimeError:
            pass
        time.sleep(2)
        for pid in frozen:
            signal_quietly(pid, signal.SIGCONT)
        log(f"freeze: {leader['name']} resumed")

    writers, fault_at = load_with_fault(cluster, port, token, "freeze", fault)
    verify(cluster, writers, "freeze", fault_at)
    check(cluster.leader() not in (None, leader), "freeze: the other member leads")
    wait_replica(cluster, leader, f"freeze: {leader['name']} back as a replica")
    wait_for(lambda: cluster.sync_standby() is not None, 60, "a synchronous standby again")


def scenario_keyless(cluster, port, token):
    """Negative control: the lost answers retried without a key."""
    writers = Writers(port, token, "keyless", keyed=False, lose_every=10).start()
    time.sleep(8)
    writers.finish()
    _, doubled = verify(cluster, writers, "keyless", None, expect_ok=False)
    check(len(doubled) > 0, f"keyless (negative control): retries without a key stored "
                            f"{len(doubled)} students twice")


def scenario_async(cluster, port, token):
    """Negative control: asynchronous replication, the WAL sender paused, then a crash."""
    cluster.set_config(synchronous_mode=False, maximum_lag_on_failover=1 << 40)
    wait_for(lambda: cluster.sync_standby() is None, 30, "no synchronous standby")
    leader = cluster.leader()
    pids = cluster.postgres_pids(leader)
    senders = [pid for pid in pids if "walsender" in process_title(pid)]
    check(bool(senders), "async: the leader's WAL sender found")

    def fault():
        for pid in senders:
            signal_quietly(pid, signal.SIGSTOP)
        time.sleep(1)
        # The whole server at once, as a machine that dies: nothing more is sent.
        for pid in reversed(cluster.postgres_pids(leader)):
            signal_quietly(pid, signal.SIGKILL)

    writers, fault_at = load_with_fault(cluster, port, token, "async", fault)
    lost, _ = verify(cluster, writers, "async", fault_at, expect_ok=False)
    check(len(lost) > 0, f"async (negative control): {len(lost)} acknowledged writes lost")
    wait_replica(cluster, leader, f"async: {leader['name']} back as a replica")


def scenario_multihost(cluster, token, work):
    """libpq's multi-host URL instead of HAProxy: the service finds the leader itself."""
    hosts = ",".join(f"127.0.0.1:{m['pg_port']}" for m in cluster.members)
    url = f"postgres://postgres:{PASSWORD}@{hosts}/students?target_session_attrs=read-write"
    proc, port = service(cluster, work, url)
    try:
        body = json.dumps({"first_name": "multihost", "last_name": "URL", "major": "Routing"})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("POST", "/students", body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        status = conn.getresponse().status
        check(status == 201, f"multihost: a write through {url.split('@')[1]} ({status})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


SCENARIOS = {"kill": scenario_kill, "freeze": scenario_freeze, "keyless": scenario_keyless,
             "async": scenario_async}


def main():
    chosen = sys.argv[1:] or ["kill", "freeze", "keyless", "multihost", "async"]
    work = tempfile.mkdtemp(prefix="students-failover.")
    os.chmod(work, 0o755)
    cluster = Cluster(work)
    proc = None
    try:
        log(f"cluster: etcd, Patroni pg0 and pg1, HAProxy on 127.0.0.1:{cluster.haproxy_port}")
        cluster.start()
        psql(cluster.url(), "CREATE DATABASE students")
        proc, port = service(cluster, work)
        token = create_token(BINARY, cluster.url("students"), "failover")
        for name in chosen:
            log(f"== {name}")
            if name == "multihost":
                scenario_multihost(cluster, token, work)
            else:
                SCENARIOS[name](cluster, port, token)
    except Exception as err:  # noqa: BLE001 - reported as a failure, with the logs
        check(False, f"the run itself: {err!r}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        cluster.stop()
        if FAILURES:
            for name in sorted(os.listdir(work)):
                if name.endswith(".log"):
                    with open(os.path.join(work, name), errors="replace") as f:
                        tail = f.readlines()[-15:]
                    log(f"--- {name} (last lines)\n" + "".join(tail))
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        log(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    log("every check passed")


if __name__ == "__main__":
    main()
