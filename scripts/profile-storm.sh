#!/usr/bin/env bash
# Profiles `pbn serve` through the out-of-process token storm and draws the flamegraph
# docs/flamegraph-storm.svg: perf samples only the pbn process (the benchmark starts it through a
# `perf record` wrapper), inferno folds and draws the stacks. Installs perf (Debian) and inferno
# (crates.io) when they are missing. The storm's own CPU figure for pbn reads 0 in this run (the
# benchmark sees the wrapper's pid): take CPU figures from `--only storm-process` without it.
#
# Usage: scripts/profile-storm.sh [LOAD-BENCHMARK FLAGS...]   e.g. --storm-rounds 1
#   PROFILE_FREQ=2999          samples per second
#   PBN_NATS_SERVER=PATH       nats-server to use (default: install the pinned one)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
target="${CARGO_TARGET_DIR:-$repo_root/target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v perf >/dev/null 2>&1; then
    apt-get update
    apt-get install -y linux-perf || apt-get install -y perf
fi
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
    cargo install inferno --locked
fi
if [[ -z "${PBN_NATS_SERVER:-}" ]]; then
    scripts/install-nats-server.sh
    export PBN_NATS_SERVER="$repo_root/.tools/bin/nats-server"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --bin pbn
cat >"$work/pbn" <<EOF
#!/bin/sh
exec perf record -F ${PROFILE_FREQ:-2999} --call-graph dwarf,16384 -o "$work/perf.data" -- "$target/release/pbn" "\$@"
EOF
chmod +x "$work/pbn"
cargo bench --bench load -- --only storm-process --pbn "$work/pbn" "$@"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
mkdir -p docs
inferno-flamegraph --minwidth 1.5 --title "pbn serve, out-of-process token storm" <"$work/folded" \
    >docs/flamegraph-storm.svg
echo "wrote docs/flamegraph-storm.svg ($(wc -l <"$work/folded") distinct stacks)"
