#!/usr/bin/env bash
# Installs Debian's `chromium` and `chromium-driver` packages for the browser tests
# (tests/browser), which drive a headless chromium through `chromedriver`. Idempotent: returns
# at once when both `chromium` and `chromedriver` are already on PATH. Needs root (CI runs as
# root on Debian).
# Usage: scripts/install-chromium.sh   (from any directory)
set -euo pipefail

die() {
    echo "install-chromium: error: $*" >&2
    exit 1
}

have_both() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

if have_both; then
    echo "chromium already installed at $(command -v chromium), chromedriver at $(command -v chromedriver)"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found; install chromium and chromedriver (same version) by other means"
if [ "$(id -u)" -ne 0 ]; then
    die "root is needed to apt-get install chromium chromium-driver (run as root, or install them yourself)"
fi
echo "installing Debian's chromium and chromium-driver packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed"
# No recommends: the tests run chromium headless, without its desktop extras. One install
# command keeps the browser and its driver at the same version, as chromedriver requires.
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null ||
    die "apt-get install chromium chromium-driver failed"
have_both || die "the packages installed no chromium or chromedriver binary on PATH"
echo "chromium installed at $(command -v chromium), chromedriver at $(command -v chromedriver)"
