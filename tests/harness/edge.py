#!/usr/bin/env python3
"""The edge test: the service behind deploy/haproxy/haproxy.cfg, run by scripts/edge-test.sh,
which builds the binary and gives DATABASE_URL (a server the test may create a database on).

It shows, against the real HAProxy and the real service:
  1. 2,000 connections that never finish their headers are closed by the edge within its
     `timeout http-request`, while normal requests through it keep answering 200 within 1 s and
     the service's peak memory stays flat. The negative control sends the same connections to
     the service directly: they are still open after the same time, and its memory grows.
  2. A body sent at 1 byte/s is cut by the edge (directly, the service keeps waiting), and an
     idle keep-alive connection is closed after 15 s.
  3. A DELETE smuggled behind a request with both Content-Length and Transfer-Encoding (or two
     lengths) never runs, and the connection closes after the first answer; the same DELETE
     pipelined behind an honest request runs, through the edge and directly.
  4. The edge's own errors (400, 408, 413, 431, 503) are JSON in the service's error shape.
     HAProxy before 3.3 answers a head that times out or cannot be parsed from its H1 layer,
     with its built-in HTML (HAProxy issue #3032): there the test checks the status only, and
     says so.

Standard library only. Every loop is bounded in count and time.
"""

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

import common
from common import free_port, psql, with_database

SERVICE = os.environ["SERVICE_BIN"]
CONFIG = os.environ["EDGE_CONFIG"]
SLOW_CLIENTS = int(os.environ.get("SLOW_CLIENTS", "2000"))
# The config's `timeout http-request`, and how much later than it a close may come.
REQUEST_TIMEOUT_S = 10
GRACE_S = 5
# Peak memory (VmHWM) the service may gain while the slow clients are held at the edge.
FLAT_KIB = 4 * 1024

problems = []


def haproxy_version():
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=True).stdout
    numbers = out.split()[2].split("-")[0].split(".")
    return tuple(int(n) for n in numbers[:2])


# Whether the H1 layer's own errors (a head timed out or unparsable) use the error files.
EARLY_ERRORS_ARE_JSON = haproxy_version() >= (3, 3)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(ok, what):
    log(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        problems.append(what)


def memory_kib(pid):
    """(VmRSS, VmHWM) of `pid`, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else "0"
    return int(fields["VmRSS"]), int(fields["VmHWM"])


def wait_for(port, path, wanted, timeout_s):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = common.request(port, "GET", path, timeout=2)[0]
            if last == wanted:
                return True
        except OSError as err:
            last = err
        time.sleep(0.1)
    log(f"GET {path} on {port} never answered {wanted} (last: {last})")
    return False


def raw_exchange(port, data, timeout_s=15, drip=None):
    """Sends `data` on a new connection (then, if `drip` is (bytes, interval), those bytes one by
    one at that interval), and reads until the peer closes or `timeout_s` passes. (seconds until
    the close or None if still open, what was received)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    started = time.monotonic()
    sock.sendall(data)
    received = b""
    pending = list(drip[0]) if drip else []
    interval = drip[1] if drip else None
    next_drip = started + interval if drip else None
    try:
        while time.monotonic() - started < timeout_s:
            wait = 0.2 if pending else timeout_s
            sock.settimeout(max(0.01, min(wait, timeout_s - (time.monotonic() - started))))
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    return time.monotonic() - started, received
                received += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                return time.monotonic() - started, received
            if pending and time.monotonic() >= next_drip:
                try:
                    sock.send(bytes([pending.pop(0)]))
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started, received
                next_drip += interval
        return None, received
    finally:
        sock.close()


def parse(response):
    """(status, headers dict, body) of a raw HTTP/1.x response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and " " in lines[0] else 0
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


def is_json_error(response, status, early=False):
    """Whether `response` is a JSON error of `status`, and its detail or what is wrong. An
    `early` error (from HAProxy's H1 layer) need only have the status where that layer ignores
    the error files."""
    got, headers, body = parse(response)
    if early and not EARLY_ERRORS_ARE_JSON and got == status:
        return True, f"status {status}; HAProxy {'.'.join(map(str, haproxy_version()))} " \
                     "sends its built-in body here (JSON from 3.3 on)"
    if got != status:
        return False, f"status {got}, not {status}: {response[:200]!r}"
    if not headers.get("content-type", "").startswith("application/json"):
        return False, f"content-type {headers.get('content-type')!r}"
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return False, f"body is not {{\"detail\": ...}}: {body[:200]!r}"
    return True, detail


def hold_slow_clients(port, count, hold_s, service_pid, normal_port):
    """Opens `count` connections to `port` that send half a request head and stop, and watches
    them for `hold_s` seconds while a client sends normal requests to `normal_port`. Returns the
    seconds until each closed (None: still open), what each received, the normal requests'
    (status, seconds), and the service's (RSS, HWM) before and at the end, in KiB."""
    before = memory_kib(service_pid)
    selector = selectors.DefaultSelector()
    opened = []
    for n in range(count):
        sock = socket.socket()
        sock.setblocking(True)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET /students HTTP/1.1\r\nHost: edge\r\nX-Slow-{n}: ".encode())
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, n)
        opened.append(sock)
    started = time.monotonic()
    closed_after = [None] * count
    received = [b""] * count

    normal, stop = [], threading.Event()

    def normal_client():
        while not stop.is_set() and len(normal) < 10000:
            began = time.monotonic()
            try:
                status = common.request(normal_port, "GET", "/students?limit=5", timeout=5)[0]
            except OSError as err:
                status = f"error: {err}"
            normal.append((status, time.monotonic() - began))
            time.sleep(0.05)

    client = threading.Thread(target=normal_client, daemon=True)
    client.start()
    open_count = count
    while time.monotonic() - started < hold_s and open_count:
        for key, _ in selector.select(timeout=0.2):
            n = key.data
            try:
                chunk = key.fileobj.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                chunk = b""
            if chunk:
                received[n] += chunk
                continue
            closed_after[n] = time.monotonic() - started
            selector.unregister(key.fileobj)
            open_count -= 1
    end = memory_kib(service_pid)
    stop.set()
    client.join(timeout=10)
    for sock in opened:
        sock.close()
    selector.close()
    return closed_after, received, normal, before, end


def slow_headers(edge, service, service_pid):
    log(f"{SLOW_CLIENTS} connections that never finish their headers, through the edge")
    hold = REQUEST_TIMEOUT_S + GRACE_S
    closed, received, normal, before, end = hold_slow_clients(
        edge, SLOW_CLIENTS, hold, service_pid, edge
    )
    still_open = sum(1 for c in closed if c is None)
    latest = max((c for c in closed if c is not None), default=0)
    check(still_open == 0, f"the edge closed all {SLOW_CLIENTS} within {hold} s "
          f"({still_open} still open; the last closed after {latest:.1f} s)")
    check(latest >= REQUEST_TIMEOUT_S - 1,
          f"none closed long before timeout http-request (the last after {latest:.1f} s)")
    answered = [r for r in received if r]
    ok, detail = is_json_error(answered[0], 408, early=True) if answered else (False, "nothing")
    check(ok, f"those told why got a 408 ({len(answered)} of {SLOW_CLIENTS}): {detail}")
    statuses = sorted({str(s) for s, _ in normal})
    slowest = max((t for _, t in normal), default=0)
    check(len(normal) >= 50 and statuses == ["200"],
          f"meanwhile {len(normal)} normal requests through the edge got {statuses}")
    check(slowest < 1.0, f"the slowest normal request took {slowest * 1000:.0f} ms (bound 1 s)")
    grew = end[1] - before[1]
    check(grew <= FLAT_KIB, f"the service's peak memory stayed flat: {before[1] // 1024} MiB "
          f"before, {end[1] // 1024} MiB peak after (+{grew} KiB, bound {FLAT_KIB} KiB)")

    log(f"negative control: the same {SLOW_CLIENTS} connections to the service directly")
    closed, _, normal, before, end = hold_slow_clients(
        service, SLOW_CLIENTS, hold, service_pid, service
    )
    still_open = sum(1 for c in closed if c is None)
    check(still_open >= SLOW_CLIENTS * 0.9,
          f"directly, {still_open} of {SLOW_CLIENTS} were still open after {hold} s: "
          "the edge is what closes them")
    grew = end[1] - before[1]
    went = f"the service's peak memory went from {before[1] // 1024} to {end[1] // 1024} MiB"
    # About 18 KiB a socket: enough of them to show the bound above can fail.
    if SLOW_CLIENTS * 18 > 2 * FLAT_KIB:
        check(grew > FLAT_KIB, f"directly, {went}: the memory bound above can fail")
    else:
        log(f"    directly, {went} (too few clients to show the memory bound can fail)")


def slow_body(edge, service, token):
    # With a token: without one the service refuses the write before it reads any of the body.
    head = (b"POST /students HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 64\r\n\r\n")
    body = b'{"first_name": "Slow", "last_name": "Loris", "major": "Waiting"}'[:64]
    hold = REQUEST_TIMEOUT_S + GRACE_S
    log("a body sent at 1 byte/s, through the edge")
    after, received = raw_exchange(edge, head, timeout_s=hold, drip=(body, 1.0))
    check(after is not None and after <= hold,
          f"the edge cut it after {after if after is None else round(after, 1)} s")
    ok, detail = is_json_error(received, 408) if received else (False, "nothing received")
    check(ok, f"with a JSON 408: {detail}")
    log("negative control: the same body sent to the service directly")
    after, _ = raw_exchange(service, head, timeout_s=hold, drip=(body, 1.0))
    check(after is None, f"directly, the service still waited after {hold} s "
          f"(closed after {after})")


def smuggling(edge, service, token):
    """A DELETE hidden behind a request whose length two readers could disagree on. Through the
    edge it must never run, and the connection must close after the first answer. The negative
    control sends the same DELETE pipelined behind an honest request: it runs, so a deletion
    shows."""
    auth = b"Authorization: Bearer " + token.encode() + b"\r\n"

    def new_student():
        status, _, body, raw = common.request(
            service, "POST", "/students", {"first_name": "Hidden", "last_name": "Request",
                                           "major": "Smuggling"},
            headers={"Authorization": f"Bearer {token}"})
        if status != 201:
            raise RuntimeError(f"creating a student answered {status}: {raw[:200]!r}")
        return body["id"]

    def exists(student):
        return common.request(service, "GET", f"/students/{student}")[0] == 200

    def hidden_delete(student):
        return (f"DELETE /students/{student} HTTP/1.1\r\nHost: edge\r\n".encode() + auth
                + b"Content-Length: 0\r\n\r\n")

    def shapes(student):
        chunked_then_delete = b"0\r\n\r\n" + hidden_delete(student)
        length = str(len(chunked_then_delete)).encode()
        return [
            ("Content-Length, then Transfer-Encoding: chunked",
             b"GET /health HTTP/1.1\r\nHost: edge\r\nContent-Length: " + length
             + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_then_delete),
            ("Transfer-Encoding: chunked, then Content-Length",
             b"GET /health HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: " + length + b"\r\n\r\n" + chunked_then_delete),
            ("Transfer-Encoding: chunked on a POST with Content-Length",
             b"POST /students HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
             + auth + b"Content-Length: " + length + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
             + chunked_then_delete),
            ("Transfer-Encoding: identity, chunked with Content-Length",
             b"GET /health HTTP/1.1\r\nHost: edge\r\nContent-Length: " + length
             + b"\r\nTransfer-Encoding: identity, chunked\r\n\r\n" + chunked_then_delete),
            ("two different Content-Lengths",
             b"GET /health HTTP/1.1\r\nHost: edge\r\nContent-Length: 0\r\nContent-Length: "
             + str(len(hidden_delete(student))).encode() + b"\r\n\r\n" + hidden_delete(student)),
        ]

    log("a DELETE smuggled behind an ambiguous length, through the edge")
    for index in range(len(shapes(0))):
        student = new_student()
        what, data = shapes(student)[index]
        after, received = raw_exchange(edge, data, timeout_s=5)
        answers = received.count(b"HTTP/1.1 ")
        check(exists(student), f"{what}: the hidden DELETE did not run")
        check(after is not None and answers <= 1,
              f"{what}: one answer ({parse(received)[0]}), then the connection closed "
              f"({answers} answers, {'still open' if after is None else 'closed'})")
    log("negative control: the same DELETE pipelined behind an honest request")
    for port, where in ((edge, "through the edge"), (service, "directly")):
        student = new_student()
        honest = b"GET /health HTTP/1.1\r\nHost: edge\r\nContent-Length: 0\r\n\r\n"
        raw_exchange(port, honest + hidden_delete(student)[:-4] + b"\r\nConnection: close\r\n\r\n",
                     timeout_s=5)
        check(not exists(student), f"{where}, the pipelined DELETE ran: the check above can fail")


def idle_keep_alive(edge):
    """One request on a keep-alive connection through the edge, then silence: the edge closes it
    after `timeout http-keep-alive` (15 s). Rocket alone kept such connections past 150 s."""
    keep_alive_s = 15
    log("an idle keep-alive connection, through the edge")
    sock = socket.create_connection(("127.0.0.1", edge), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: edge\r\n\r\n")
        answer = sock.recv(65536)
        check(answer.startswith(b"HTTP/1.1 200"), f"it was answered: {answer[:40]!r}")
        idle_since = time.monotonic()
        sock.settimeout(keep_alive_s + GRACE_S)
        try:
            closed = sock.recv(65536) == b""
        except (socket.timeout, ConnectionResetError) as err:
            closed = isinstance(err, ConnectionResetError)
        idle = time.monotonic() - idle_since
        check(closed and keep_alive_s - 1 <= idle <= keep_alive_s + GRACE_S,
              f"the edge closed it after {idle:.1f} s idle (timeout http-keep-alive 15 s)")
    finally:
        sock.close()


def edge_errors(edge, stop_service):
    cases = [
        ("a request head over 8 KiB", 431, False,
         b"GET /students HTTP/1.1\r\nHost: edge\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"),
        ("a request head over 16 KiB", 400, True,
         b"GET /students HTTP/1.1\r\nHost: edge\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"),
        ("not HTTP", 400, True, b"HELLO THERE\r\n\r\n"),
        ("a declared body over 64 KiB", 413, False,
         b"POST /students HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
         b"Content-Length: 100000\r\n\r\n"),
    ]
    for what, status, early, data in cases:
        _, received = raw_exchange(edge, data, timeout_s=5)
        ok, detail = is_json_error(received, status, early)
        check(ok, f"{what}: a {status} from the edge: {detail}")
    stop_service()
    # Out after 2 failed checks, 2 s apart.
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        _, received = raw_exchange(edge, b"GET /students HTTP/1.1\r\nHost: edge\r\n\r\n", 5)
        status = parse(received)[0]
        if status == 503:
            break
        time.sleep(0.5)
    ok, detail = is_json_error(received, 503)
    check(ok, f"with the service down: a JSON 503 from the edge: {detail}")


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = SLOW_CLIENTS * 2 + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    server_url = os.environ["DATABASE_URL"]
    database = f"edge_{os.getpid()}"
    psql(server_url, f"CREATE DATABASE {database}")
    url = with_database(server_url, database)
    service_port, edge_port = free_port(), free_port()
    env = dict(os.environ, DATABASE_URL=url, ROCKET_PORT=str(service_port),
               ROCKET_ADDRESS="127.0.0.1", ROCKET_LOG_LEVEL="critical")
    service = subprocess.Popen([SERVICE], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd="/")
    edge_env = dict(os.environ, STUDENTS_API_BACKEND=f"127.0.0.1:{service_port}",
                    EDGE_BIND=f"127.0.0.1:{edge_port}")
    edge_log = open(os.path.join(os.environ.get("EDGE_WORKDIR", "/tmp"), "edge.log"), "wb")
    edge = subprocess.Popen(["haproxy", "-db", "-f", CONFIG], env=edge_env,
                            stdout=edge_log, stderr=subprocess.STDOUT)
    try:
        if not (wait_for(service_port, "/ready", 200, 60) and wait_for(edge_port, "/ready", 200, 30)):
            return 1
        log(f"service on 127.0.0.1:{service_port}, the edge on 127.0.0.1:{edge_port}")
        slow_headers(edge_port, service_port, service.pid)
        token = common.create_token(SERVICE, url, "edge")
        slow_body(edge_port, service_port, token)
        smuggling(edge_port, service_port, token)
        idle_keep_alive(edge_port)

        def stop_service():
            service.terminate()
            service.wait(timeout=30)

        edge_errors(edge_port, stop_service)
    finally:
        for proc in (edge, service):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        psql(server_url, f"DROP DATABASE {database} WITH (FORCE)")
    if problems:
        log(f"FAIL: {len(problems)} problems")
        return 1
    log("ok: the edge closed every slow client and cut the slow body, the service unaffected; "
        "its errors are JSON wherever HAProxy applies its error files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
