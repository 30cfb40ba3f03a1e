#!/usr/bin/env bash
# pbn's benchmarks: the criterion groups (claims, callout, store) with a short warm-up and
# measurement, then the load benchmark against a real nats-server with its default sizes.
# Everything finishes within about 10 minutes on a 2-core machine (after the release build).
#
# Usage: scripts/bench.sh [LOAD-BENCHMARK FLAGS...]   e.g. scripts/bench.sh --clients 1000
#        scripts/bench.sh --million [LOAD-BENCHMARK FLAGS...]
#   --million   instead of the default run: only the million-user scenario of the load benchmark
#               (a store of 1,000,000 users built by the bulk import, ~1 GiB on disk; lookups,
#               `pbn serve` start to first login, idle RSS, token storms against it and against
#               2,000 users), results in bench-results/million.md; --million-users N for another
#               size. Takes several minutes more than the default run's load part.
#   BENCH_WARMUP=1 BENCH_MEASURE=3   criterion warm-up and measurement seconds per bench
#   PBN_NATS_SERVER=PATH             nats-server to use (default: install the pinned one)
# Results go to bench-results/ (gitignored): machine.txt, criterion.txt (full criterion output),
# criterion.md (medians), load.md (the load tables), load.txt (its log), summary.md (all).
# Exits non-zero if a bench fails or the load benchmark saw unexpected connection failures.
set -euo pipefail

million=0
if [[ "${1:-}" == "--million" ]]; then
    million=1
    shift
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out="$repo_root/bench-results"
mkdir -p "$out"

step() {
    echo
    echo "==> $*"
}

if [[ -z "${PBN_NATS_SERVER:-}" ]]; then
    scripts/install-nats-server.sh
    export PBN_NATS_SERVER="$repo_root/.tools/bin/nats-server"
fi
# Every client is a socket in this process and in nats-server (which inherits the limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

step "machine"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "rustc: $(rustc --version)"
    echo "nats-server: $("$PBN_NATS_SERVER" --version)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$out/machine.txt"

step "release build"
cargo build --release --benches --bin pbn

if ((million)); then
    step "load benchmark: a million users"
    set +e
    cargo bench --bench load -- --only million --output "$out/million.md" "$@" 2>&1 |
        tee "$out/million.txt"
    status=${PIPESTATUS[0]}
    set -e
    step "summary ($out/million.md)"
    [[ -f "$out/million.md" ]] && cat "$out/million.md"
    exit "$status"
fi

step "criterion: claims, callout, store"
cargo bench --bench claims --bench callout --bench store -- \
    --warm-up-time "${BENCH_WARMUP:-1}" --measurement-time "${BENCH_MEASURE:-3}" \
    2>&1 | tee "$out/criterion.txt"

# Criterion prints "group/bench  time: [low median high]", the time on the next line when the
# name is long. The median is the middle figure.
awk '
    BEGIN { print "| bench | median | 95 % interval |"; print "| --- | ---: | --- |" }
    /time:/ {
        line = $0
        if ($1 == "time:") { name = prev } else { name = $1 }
        sub(/.*\[/, "", line); sub(/\].*/, "", line)
        n = split(line, f, " ")
        if (n >= 6) printf "| %s | %s %s | %s %s – %s %s |\n", name, f[3], f[4], f[1], f[2], f[5], f[6]
    }
    { if ($1 != "") prev = $1 }
' "$out/criterion.txt" | tee "$out/criterion.md"

step "load benchmark"
rm -f "$out/load.md"
set +e
cargo bench --bench load -- --output "$out/load.md" "$@" 2>&1 | tee "$out/load.txt"
load_status=${PIPESTATUS[0]}
set -e

{
    echo "# pbn benchmark results"
    echo
    sed 's/^/    /' "$out/machine.txt"
    echo
    echo "## Criterion (median of each bench)"
    echo
    cat "$out/criterion.md"
    echo
    echo "## Load benchmark"
    echo
    [[ -f "$out/load.md" ]] && cat "$out/load.md"
} >"$out/summary.md"

step "summary ($out/summary.md)"
cat "$out/summary.md"
exit "$load_status"
