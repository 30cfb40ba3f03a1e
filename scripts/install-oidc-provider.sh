#!/usr/bin/env bash
# Installs the pinned OpenID Connect provider the OIDC login tests run (npm package
# `oidc-provider`) into <repo>/.tools/oidc-provider, with the tests' provider script
# (tests/oidc/provider.mjs) beside it. Needs node (20 or later) and npm (the npm registry only).
#
# Idempotent: only copies the provider script when the pinned version is already installed.
# Usage: scripts/install-oidc-provider.sh   (from any directory)
set -euo pipefail

OIDC_PROVIDER_VERSION="9.13.3"

die() {
    echo "install-oidc-provider: error: $*" >&2
    exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo_root/.tools/oidc-provider"
manifest="$prefix/node_modules/oidc-provider/package.json"

installed_version() {
    # Prints the installed package's version, or nothing.
    [ -f "$manifest" ] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version)' "$manifest" 2>/dev/null || true
}

command -v node >/dev/null 2>&1 || die "node not found; install Node.js 20 or later"
command -v npm >/dev/null 2>&1 || die "npm not found; install it (e.g. 'apt-get install npm')"

mkdir -p "$prefix"
# The script imports the package, so it runs from the folder that holds node_modules.
cp "$repo_root/tests/oidc/provider.mjs" "$prefix/provider.mjs"

if [ "$(installed_version)" = "$OIDC_PROVIDER_VERSION" ]; then
    echo "oidc-provider $OIDC_PROVIDER_VERSION already installed in $prefix"
    exit 0
fi

echo "installing oidc-provider $OIDC_PROVIDER_VERSION from npm into $prefix"
npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock \
    "oidc-provider@$OIDC_PROVIDER_VERSION" >/dev/null
[ "$(installed_version)" = "$OIDC_PROVIDER_VERSION" ] ||
    die "npm finished but $manifest does not report $OIDC_PROVIDER_VERSION"
echo "installed oidc-provider $OIDC_PROVIDER_VERSION in $prefix"
