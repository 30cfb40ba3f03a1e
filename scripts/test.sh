#!/usr/bin/env bash
# The one test command: formatting, lints, the whole test suite (against a real nats-server),
# and doctests. Installs the pinned nats-server into .tools/ first if it is missing.
# Usage: scripts/test.sh   (from any directory; exits non-zero on the first failure)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

step() {
    echo
    echo "==> $*"
}

step "nats-server"
scripts/install-nats-server.sh
# An unsupported version, for the tests that prove pbn refuses it.
scripts/install-nats-server.sh 2.10.26
export PBN_NATS_SERVER="$repo_root/.tools/bin/nats-server"
scripts/install-node-clients.sh
scripts/install-oidc-provider.sh

step "chromium"
# The browser tests (tests/browser) drive it headless through chromedriver.
scripts/install-chromium.sh

step "prometheus"
scripts/install-prometheus.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --no-fail-fast
else
    step "cargo test (cargo-nextest not installed)"
    cargo test --no-fail-fast
fi

step "cargo test --doc"
cargo test --doc

step "all checks passed"
