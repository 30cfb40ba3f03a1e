#!/usr/bin/env bash
# Installs Prometheus (Debian's `prometheus` package) for the test that has a real Prometheus
# scrape `pbn serve` (tests/lifecycle/prometheus.rs). Idempotent: returns at once when a
# `prometheus` binary is already on PATH. Needs root (CI runs as root on Debian).
# Usage: scripts/install-prometheus.sh   (from any directory)
set -euo pipefail

die() {
    echo "install-prometheus: error: $*" >&2
    exit 1
}

if command -v prometheus >/dev/null 2>&1; then
    echo "prometheus already installed at $(command -v prometheus)"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Debian's prometheus package by other means"
if [ "$(id -u)" -ne 0 ]; then
    die "root is needed to apt-get install prometheus (run as root, or install it yourself)"
fi
echo "installing Debian's prometheus package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed"
# No recommends: only the server binary is needed, not the exporters or the web assets.
# Debian's package starts a system service where one runs; the tests start their own.
apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
    die "apt-get install prometheus failed"
command -v prometheus >/dev/null 2>&1 || die "the prometheus package installed no prometheus binary on PATH"
echo "prometheus installed at $(command -v prometheus)"
