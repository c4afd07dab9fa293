#!/usr/bin/env bash
# The README's /docs link in a real browser (tests/harness/browser.py): Debian's Chromium, driven
# by Playwright for Python from PyPI (its own browser download is never used), against the
# service on a database of its own (created on the server DATABASE_URL names, dropped after).
# Screenshots go to target/browser/.
#
#   scripts/with-throwaway-pg.sh scripts/browser-test.sh            # as CI runs it
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/pg-lib.sh

PLAYWRIGHT_VERSION=1.64.1
require chromium psql curl

venv=target/playwright-venv
python_tool "$venv" "playwright==$PLAYWRIGHT_VERSION"

service_on_own_database "browser_$$"

rm -rf target/browser
"$venv/bin/python" tests/harness/browser.py "http://127.0.0.1:$service_port" "$service_token" \
  target/browser
