#!/bin/sh
# Installs Debian's chromium for the status page test (test/e2e/status-page.test.ts, driven by
# playwright-core); CHROMIUM_PATH overrides where it is looked for. Never fails the test run.
set -eu
sh "$(dirname "$0")/apt-ensure.sh" "${CHROMIUM_PATH:-/usr/bin/chromium}" chromium -- status page browser tests
