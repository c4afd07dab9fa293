#!/usr/bin/env python3
"""Runs the shell blocks of the README and docs/ as a newcomer would, in order, in a copy of this
checkout (every file git tracks, as it is in the working tree), with `target/debug` of the copy on
PATH as the `students-api` the docs name.

A block runs as written, with `bash -e -o pipefail`, unless the HTML comment just before it says:
- `<!-- not run: REASON -->`: skipped, with the reason logged (a cluster, a package install, ...);
- `<!-- run: in the background ... -->`: started and left running; the next block waits until
  http://localhost:8089/ready answers 200 (what `scripts/serve.sh` does).
A block followed by an output block (```json or ```text) must print that output: compared with
whitespace removed, `…` standing for anything. Every block run must exit 0.

    scripts/run-docs.py           # needs ports 8089 and 5439 free; stops what it started
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

FILES = ["README.md", "docs/api.md", "docs/migrations.md", "docs/operations.md",
         "docs/configuration.md", "docs/architecture.md", "docs/tests.md"]
SHELL = ("sh", "bash", "console", "shell")


def blocks(path):
    """(line, marker or None, code, expected output or None) of each shell block of `path`."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found, i, marker = [], 0, None
    while i < len(lines):
        line = lines[i]
        comment = re.match(r"^<!--\s*(.*?)\s*-->\s*$", line)
        if comment:
            marker = comment.group(1)
        elif line.startswith("```"):
            kind = line[3:].strip()
            end = lines.index("```", i + 1)
            code = "\n".join(lines[i + 1:end])
            if kind in SHELL:
                output, after = None, end + 1
                while after < len(lines) and not lines[after].strip():
                    after += 1
                if after < len(lines) and lines[after] in ("```json", "```text"):
                    close = lines.index("```", after + 1)
                    output = "\n".join(lines[after + 1:close])
                found.append((i + 1, marker, code, output))
            marker = None
            i = end
        elif line.strip():
            marker = None
        i += 1
    return found


def matches(expected, actual):
    squeeze = lambda text: re.sub(r"\s+", "", text)
    pattern = ".*?".join(re.escape(part) for part in squeeze(expected).split("…"))
    return re.fullmatch(pattern, squeeze(actual), re.S) is not None


def ready(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://localhost:8089/ready", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main():
    # The comparison itself must tell a different output apart, "…" or not.
    assert matches('[{"id":1,"a":"…"}, …]', '[{"id":1,"a":"x y"},{"id":2}]')
    assert not matches('[{"id":1,"a":"…"}]', '[{"id":2,"a":"x"}]')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    copy = os.path.join(root, "target", "docs-run", "checkout")
    shutil.rmtree(copy, ignore_errors=True)
    os.makedirs(copy)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if os.path.exists(os.path.join(root, name)):
            os.makedirs(os.path.dirname(os.path.join(copy, name)), exist_ok=True)
            shutil.copy2(os.path.join(root, name), os.path.join(copy, name))
    # The copy's own target directory, its dependencies linked from this checkout's: only the
    # workspace's crates are built again.
    if os.path.isdir(os.path.join(root, "target", "debug")):
        os.makedirs(os.path.join(copy, "target"))
        subprocess.run(["cp", "-al", os.path.join(root, "target", "debug"),
                        os.path.join(copy, "target", "debug")], check=True)
    env = dict(os.environ, PATH=f"{copy}/target/debug:{os.environ['PATH']}")
    env.pop("DATABASE_URL", None)

    background, problems, ran, skipped = [], [], 0, 0
    try:
        for name in FILES:
            for line, marker, code, output in blocks(os.path.join(root, name)):
                where = f"{name}:{line}"
                if marker and marker.startswith("not run:"):
                    skipped += 1
                    print(f"-- {where}: {marker}", flush=True)
                    continue
                if background and not ready(300):
                    problems.append(f"{where}: the service never answered /ready on :8089")
                    return report(problems, ran, skipped)
                print(f"== {where}\n{code}", flush=True)
                ran += 1
                if marker and marker.startswith("run: in the background"):
                    log = open(os.path.join(root, "target", "docs-run", f"background-{line}.log"), "wb")
                    background.append(subprocess.Popen(
                        ["bash", "-e", "-o", "pipefail", "-c", code], cwd=copy, env=env,
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
                    continue
                done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=copy,
                                      env=env, capture_output=True, text=True, timeout=900)
                print(done.stdout[-2000:] + done.stderr[-2000:], flush=True)
                if done.returncode != 0:
                    problems.append(f"{where}: exited {done.returncode}: {done.stderr[-500:]}")
                elif output is not None and not matches(output, done.stdout):
                    problems.append(f"{where}: printed {done.stdout[:300]!r}, not what the doc shows")
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        subprocess.run(["scripts/db.sh", "stop"], cwd=copy, env=env, capture_output=True)
    return report(problems, ran, skipped)


def report(problems, ran, skipped):
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"docs: {ran} shell blocks ran as written, {skipped} are marked not run, with why")
    return 0


if __name__ == "__main__":
    sys.exit(main())
