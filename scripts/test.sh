#!/usr/bin/env bash
# Install everything the tests need (Debian's chromium and fonts for the browser tests) and run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Debian: the browser, and fonts so that screenshots show Chinese text and the pages' icons
# (elsewhere the browser tests are skipped unless a `chromium` is on PATH).
packages=(chromium fonts-wqy-microhei fonts-noto-color-emoji)
if command -v apt-get >/dev/null && ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] && echo || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
