#!/usr/bin/env python3
"""The README's /docs link in a real browser, run by scripts/browser-test.sh against a running
service: Debian's Chromium, driven by Playwright for Python (never its own browser download).

    python3 tests/harness/browser.py http://127.0.0.1:8089 "$token" target/browser

It opens exactly the link the README gives (`/docs`, no trailing slash) and follows whatever the
service answers, as a person's browser does, then checks:
  1. Swagger UI renders, with one operation for each one in /openapi.json;
  2. its Authorize dialog takes the token the binary made;
  3. "Try it out" on POST /students answers 201, and the request carried the token;
  4. in a fresh page, without authorizing, the same answers 401.
A screenshot of each step is kept in the output folder for a person to look at.
"""

import json
import os
import shutil
import sys
import tempfile
import urllib.request

from playwright.sync_api import sync_playwright

# What a headless Chromium needs here: as root it has no sandbox, and the background services
# would each try, and fail, to reach Google's hosts on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

problems = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        problems.append(what)


def documented_operations(base):
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as answer:
        document = json.load(answer)
    return sum(len(operations) for operations in document["paths"].values())


def open_docs(page, base, out, name):
    """Opens the README's link; the page's final address and the statuses met on the way."""
    statuses = []
    page.on("response", lambda response: statuses.append(
        (response.status, response.url)) if response.request.resource_type == "document" else None)
    page.goto(f"{base}/docs", wait_until="load", timeout=15_000)
    page.locator(".opblock").first.wait_for(timeout=15_000)
    page.screenshot(path=f"{out}/{name}.png", full_page=True)
    return page.url, statuses


def try_post(page):
    """Opens POST /students, fills a body, executes it; the status Swagger UI shows."""
    operation = page.locator("#operations-students-create_student")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    body = operation.locator("textarea.body-param__text")
    body.fill('{"first_name": "Grace", "last_name": "Hopper", "major": "Computing"}')
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=10_000)
    return status.inner_text().strip(), operation


def main():
    base, token, out = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("chromium is missing: sudo apt-get install chromium")
    operations = documented_operations(base)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 1400})
        page = browser.new_page()
        url, statuses = open_docs(page, base, out, "1-docs")
        check(url == f"{base}/docs/", f"{base}/docs led to {url} by {statuses}")
        check(statuses and statuses[-1][0] == 200 and len(statuses) <= 2,
              f"the page answered 200 after at most one redirect: {statuses}")
        shown = page.locator(".opblock").count()
        check(shown == operations,
              f"Swagger UI shows {shown} operations; /openapi.json has {operations}")

        page.get_by_role("button", name="Authorize").first.click()
        dialog = page.locator(".dialog-ux")
        dialog.locator("input").first.fill(token)
        page.screenshot(path=f"{out}/2-authorize-dialog.png")
        dialog.locator("button.authorize").click()
        dialog.locator("button.btn-done").click()
        status, operation = try_post(page)
        operation.screenshot(path=f"{out}/3-post-with-token.png")
        curl = operation.locator(".curl-command").inner_text()
        check(status == "201", f"authorized, POST /students answered {status}")
        check(f"Bearer {token}" in curl, "the request Swagger UI sent carried the token")

        page = browser.new_page()
        open_docs(page, base, out, "4-docs-fresh")
        status, operation = try_post(page)
        operation.screenshot(path=f"{out}/5-post-without-token.png")
        check(status == "401", f"not authorized, POST /students answered {status}")
        browser.close()
    print(f"screenshots in {out}")
    if problems:
        print(f"FAIL: {len(problems)} problems")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
