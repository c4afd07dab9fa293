#!/usr/bin/env python3
"""Swagger UI's Authorize button, checked in a real browser: headless Chromium opens /docs of a
running service, authorizes with a token, runs "Try it out" on POST /students, and requires the
201 it answers; then the same without authorizing, which must be a 401. Saves screenshots.

    python3 scripts/swagger-authorize-check.py http://127.0.0.1:8089 "$token" target/swagger

Needs Debian's `chromium` and Playwright for Python (`pip install playwright`; its own browser
download is not used: it drives the system's Chromium).
"""

import shutil
import sys

from playwright.sync_api import sync_playwright


def try_post(page, base):
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
    base, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("chromium is missing: sudo apt-get install chromium")
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})

        page.goto(f"{base}/docs/")
        page.get_by_role("button", name="Authorize").first.click()
        dialog = page.locator(".dialog-ux")
        dialog.locator("input").first.fill(token)
        page.screenshot(path=f"{out}/1-authorize-dialog.png")
        dialog.locator("button.authorize").click()
        dialog.locator("button.btn-done").click()
        status, operation = try_post(page, base)
        operation.screenshot(path=f"{out}/2-post-with-token.png")
        curl = operation.locator(".curl-command").inner_text()
        print(f"authorized: POST /students answered {status}")
        if status != "201":
            problems.append(f"authorized, POST /students answered {status}")
        if f"Bearer {token}" not in curl:
            problems.append(f"the request Swagger UI sent has no bearer token: {curl}")

        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(f"{base}/docs/")
        status, operation = try_post(page, base)
        operation.screenshot(path=f"{out}/3-post-without-token.png")
        print(f"not authorized: POST /students answered {status}")
        if status != "401":
            problems.append(f"without authorizing, POST /students answered {status}")
        browser.close()
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
