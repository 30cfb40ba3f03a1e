#!/usr/bin/env bash
# Replicated mode under failure, the long version (not part of scripts/test.sh): the load
# benchmark's chaos scenario with the release `pbn serve`, every party its own process on
# loopback:
#   - the 2,000-client token storm on a 3-server JetStream cluster with 3 replicas, one replica
#     killed (SIGKILL) at a third of it and one nats-server at two thirds, admin writes
#     meanwhile: clients in, admin writes lost (looked up in every replica's store afterwards);
#   - apply lag p50/p99, admin writes/s replicated vs embedded, two replicas editing one user at
#     once, a minority partition (two of three servers stopped) and its healing;
#   - connects/s of the storm with 1 and with 3 replicas (interleaved rounds);
#   - rejoin time of a killed replica restarted with an empty store at 10,000 and 100,000 users.
# About 10-15 minutes on a 2-core machine after the release build.
#
# Usage: scripts/chaos.sh [LOAD-BENCHMARK FLAGS...]   e.g. scripts/chaos.sh --storm-rounds 5
#   PBN_NATS_SERVER=PATH   nats-server to use (default: install the pinned one)
# Results go to bench-results/ (gitignored): chaos-machine.txt, chaos.md (the tables),
# chaos.txt (the log). Exits non-zero if a client never got in, an admin write was lost, or
# the scenario could not run.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out="$repo_root/bench-results"
mkdir -p "$out"

if [[ -z "${PBN_NATS_SERVER:-}" ]]; then
    scripts/install-nats-server.sh
    export PBN_NATS_SERVER="$repo_root/.tools/bin/nats-server"
fi
# Every client is a socket in this process and in nats-server (which inherits the limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

target="${CARGO_TARGET_DIR:-$repo_root/target}"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "rustc: $(rustc --version)"
    echo "nats-server: $("$PBN_NATS_SERVER" --version)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$out/chaos-machine.txt"

echo "==> release build"
cargo build --release --bin pbn
cargo bench --bench load --no-run

echo "==> chaos scenario"
rm -f "$out/chaos.md"
set +e
cargo bench --bench load -- --only chaos --pbn "$target/release/pbn" --output "$out/chaos.md" "$@" \
    2>&1 | tee "$out/chaos.txt"
status=${PIPESTATUS[0]}
set -e
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/chaos-machine.txt"
exit "$status"
