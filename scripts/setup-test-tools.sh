#!/bin/sh
# What `npm test` needs besides node_modules (run as its pretest): Debian's chromium for the status
# page browser tests and Debian's prometheus for promtool (test/metrics/promtool.test.ts: /metrics
# and examples/prometheus/alerts.yaml). Idempotent and instant once installed; never fails the
# test run: where it cannot install, the tests that need a tool skip and say why.
set -eu
HERE="$(dirname "$0")"
sh "$HERE/setup-browser.sh"
sh "$HERE/apt-ensure.sh" "${PROMTOOL_PATH:-promtool}" prometheus -- promtool checks of /metrics and the alert rules
