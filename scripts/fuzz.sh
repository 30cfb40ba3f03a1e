#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for SECONDS each (default 60) with cargo-fuzz on the nightly
# toolchain; fails on the first crash, leak or timeout (the input is kept in fuzz/artifacts/).
# Prints the executions and coverage (cov/ft) each target reached.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Each run starts from fuzz/seeds/<target>/ (committed, written by `cargo run --bin seeds` in
# fuzz/) plus what earlier runs found in fuzz/corpus/<target>/ (not committed).
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2;; esac

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
if [ ! -f seeds/fixture/sealed.redb ]; then
    cargo +nightly run --release --bin seeds
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(callout callout_signed jwt creds admin_request config)
fi

echo "== building the targets (address sanitizer, nightly)"
cargo +nightly fuzz build

summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    echo "== $t: ${secs}s"
    if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $t failed; the input is in fuzz/artifacts/$t/, the log in $log" >&2
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    last=$(grep -E '#[0-9]+.*cov: ' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
    summary+=("$(printf '%-16s execs %-10s cov %-6s ft %s' "$t" "$execs" "$cov" "$ft")")
done
echo "== summary (${secs}s each)"
printf '%s\n' "${summary[@]}"
