"""What the Python test harnesses (faults.py, rolling_upgrade.py, rolling_rename.py) share: free ports, psql, one
HTTP request, a load loop bounded in time and in count, and PgBouncer. Standard library only."""

import http.client
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(url, sql):
    """Runs `sql` with psql; its unaligned, tuples-only output, stripped."""
    done = subprocess.run(
        ["psql", "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def with_database(url, name):
    """The URL of database `name` on the server of `url`."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def request(port, method, path, body=None, timeout=10, conn=None, headers=None):
    """One request on `conn` (or a connection of its own), with `headers` too; (status, headers,
    JSON body or None, raw body). Headers are keyed in lowercase."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    payload = json.dumps(body) if body is not None else None
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        if own:
            conn.close()
    hdrs = {k.lower(): v for k, v in response.getheaders()}
    parsed = None
    if hdrs.get("content-type", "").startswith("application/json") and raw:
        parsed = json.loads(raw)
    return response.status, hdrs, parsed, raw


def wait_ready(port, seconds):
    """Waits until the service on `port` answers /ready with 200; raises after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/ready", timeout=2)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the service on 127.0.0.1:{port} was not ready within {seconds} s")


def migrate(binary, database_url, *args, log=None, env=None):
    """Runs `students-api migrate ARGS`, with `env` added to its environment; its output lines,
    each passed to `log` too when given. Raises when it exits non-zero."""
    if log:
        log(f"$ students-api migrate {' '.join(args)}")
    done = subprocess.run(
        [binary, "migrate", *args],
        env=dict(os.environ, **(env or {}), DATABASE_URL=database_url),
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )
    lines = (done.stdout + done.stderr).splitlines()
    for line in lines if log else ():
        log(f"    {line}")
    if done.returncode != 0:
        raise RuntimeError(
            f"migrate {' '.join(args)} exited {done.returncode}: {' / '.join(lines[-3:])}"
        )
    return lines


def create_token(binary, database_url, name, env=None):
    """A new token of scope `students`, from `students-api token create`, which prints it last."""
    done = subprocess.run(
        [binary, "token", "create", name],
        env=dict(os.environ, **(env or {}), DATABASE_URL=database_url),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"token create {name} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


class Load:
    """`workers` client threads, each on its own keep-alive connection, each sending what its
    client (`client_for(worker)`) asks next, until `finish()`, `deadline_s` seconds or
    `max_requests` requests in all, whichever comes first.

    A client has `next_request()`, which returns (method, path, body or None), `answered(sent,
    answer)` and `failed(sent, error)`, and may have `headers()`, sent with each request; `sent` is (method, path, body, started) with `started` the
    wall-clock time it was sent, and `answer` is (status, headers, body, raw, elapsed seconds).
    """

    def __init__(self, port, workers, client_for, deadline_s, max_requests, timeout=30, think_s=0):
        self.port, self.timeout, self.think_s = port, timeout, think_s
        self.client_for = client_for
        self.deadline = time.monotonic() + deadline_s
        self.max_requests = max_requests
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.count = 0
        self.threads = [
            threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(workers)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def finish(self):
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.finish()

    def run(self, worker):
        client = self.client_for(worker)
        conn = None
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.count >= self.max_requests:
                    return
                self.count += 1
            method, path, body = client.next_request()
            sent = (method, path, body, time.time())
            began = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                extra = client.headers() if hasattr(client, "headers") else None
                status, headers, parsed, raw = request(
                    self.port, method, path, body, conn=conn, headers=extra
                )
            except (OSError, http.client.HTTPException) as err:
                if conn is not None:
                    conn.close()
                conn = None
                client.failed(sent, err)
                continue
            if headers.get("connection", "").lower() == "close":
                conn.close()
                conn = None
            client.answered(sent, (status, headers, parsed, raw, time.monotonic() - began))
            if self.think_s:
                time.sleep(self.think_s)


class PgBouncer:
    """PgBouncer in transaction pooling mode on a free loopback port, in front of the server of
    `server_url` (every database on it, as its role), with `server_connections` server
    connections per database: scripts/pgbouncer.sh writes its configuration into `workdir` and
    execs it, so `proc` is PgBouncer itself."""

    SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "pgbouncer.sh")

    def __init__(self, server_url, workdir, server_connections=2):
        self.server_url, self.port, self.proc = server_url, free_port(), None
        self.dir, self.server_connections = workdir, server_connections
        self.start()

    def url(self, database):
        """The URL of `database` through the pooler."""
        parts = urllib.parse.urlsplit(with_database(self.server_url, database))
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, "pgbouncer.log"), "ab")
        env = dict(os.environ, PGBOUNCER_POOL_SIZE=str(self.server_connections))
        self.proc = subprocess.Popen([self.SCRIPT, self.server_url, str(self.port), self.dir],
                                     env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"pgbouncer did not start; see {self.dir}/pgbouncer.log")

    def logins(self, database):
        """How many client connections to `database` it has logged."""
        with open(os.path.join(self.dir, "pgbouncer.log"), errors="replace") as log:
            return log.read().count(f"login attempt: db={database} ")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
