#!/bin/sh
# Usage: apt-ensure.sh PROGRAM PACKAGE... -- WHAT
# Installs Debian PACKAGEs with apt-get when PROGRAM (a path or a name on PATH) is missing, for the
# tests that use it (WHAT says which). Idempotent and instant when it is already there; never fails:
# where it cannot install (no apt-get, not root and no password-less sudo), it says so and the
# tests that need PROGRAM are skipped with a printed reason.
set -eu
PROGRAM="$1"; shift
PACKAGES=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do PACKAGES="$PACKAGES $1"; shift; done
[ "$#" -gt 0 ] && shift
WHAT="${*:-tests}"
have() { case "$1" in /*) [ -x "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }
have "$PROGRAM" && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no apt-get here; install$PACKAGES yourself, or the $WHAT are skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "setup: not root (and no password-less sudo): run 'apt-get install -y$PACKAGES' as root, or the $WHAT are skipped" >&2
    exit 0
  fi
fi
echo "setup: installing Debian's$PACKAGES (once) for the $WHAT..." >&2
# shellcheck disable=SC2086 # the package list is meant to split
if $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PACKAGES >/dev/null; then
  echo "setup:$PACKAGES installed" >&2
else
  echo "setup: apt-get could not install$PACKAGES; the $WHAT are skipped" >&2
fi
exit 0
