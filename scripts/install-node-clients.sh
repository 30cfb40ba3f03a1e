#!/usr/bin/env bash
# Installs the pinned NATS JavaScript client (npm package `nats`, v2) used by pbn's client tests
# into <repo>/.tools/node/node_modules/nats. Needs node and npm (the npm registry only).
#
# Idempotent: does nothing when the pinned version is already installed there.
# Usage: scripts/install-node-clients.sh   (from any directory)
set -euo pipefail

NATS_JS_VERSION="2.29.3"

die() {
    echo "install-node-clients: error: $*" >&2
    exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo_root/.tools/node"
manifest="$prefix/node_modules/nats/package.json"

installed_version() {
    # Prints the installed package's version, or nothing.
    [ -f "$manifest" ] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version)' "$manifest" 2>/dev/null || true
}

command -v node >/dev/null 2>&1 || die "node not found; install Node.js (e.g. 'apt-get install nodejs npm')"
command -v npm >/dev/null 2>&1 || die "npm not found; install it (e.g. 'apt-get install npm')"

if [ "$(installed_version)" = "$NATS_JS_VERSION" ]; then
    echo "nats.js $NATS_JS_VERSION already installed in $prefix"
    exit 0
fi

echo "installing nats.js $NATS_JS_VERSION from npm into $prefix"
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock \
    "nats@$NATS_JS_VERSION" >/dev/null
[ "$(installed_version)" = "$NATS_JS_VERSION" ] ||
    die "npm finished but $manifest does not report $NATS_JS_VERSION"
echo "installed nats.js $NATS_JS_VERSION in $prefix"
