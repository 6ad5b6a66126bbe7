#!/bin/sh
# Installs Debian's chromium for the status page test (test/e2e/status-page.test.ts, driven by
# playwright-core). Idempotent and instant when it is already there; never fails the test run:
# where it cannot install (no apt-get, not root), the test skips and says why.
set -eu
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup:browser: no apt-get here; install Chromium yourself and set CHROMIUM_PATH, or the status page browser test is skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "setup:browser: not root (and no password-less sudo): run 'apt-get install -y chromium' as root, or the status page browser test is skipped" >&2
    exit 0
  fi
fi
echo "setup:browser: installing Debian's chromium package (once) for the status page browser test..." >&2
if $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; then
  echo "setup:browser: $(command -v chromium) installed" >&2
else
  echo "setup:browser: apt-get could not install chromium; the status page browser test will be skipped" >&2
fi
exit 0
