#!/usr/bin/env bash
# pbn quickstart: installs nats-server if missing, builds pbn, creates a demo account, role and
# user (the password is generated and printed once), runs `pbn up`, proves a publish/subscribe
# round trip as the demo user through the auth callout, and prints how to connect.
# Ctrl-C stops pbn and nats-server. Environment: PBN_DIR (default pbn-data), PBN_PORT (4222).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=${PBN_DIR:-pbn-data}
port=${PBN_PORT:-4222}
store="$dir/pbn.redb"

scripts/install-nats-server.sh
echo "building pbn (release)..."
cargo build --release --quiet --bin pbn
pbn="${CARGO_TARGET_DIR:-target}/release/pbn"
export PBN_NATS_SERVER="$PWD/.tools/bin/nats-server"

mkdir -p "$dir"
[ -f "$store" ] || "$pbn" init --store "$store" >/dev/null
admin() { "$pbn" admin --store "$store" "$@"; }
admin account show demo >/dev/null 2>&1 || admin account add demo --description "quickstart demo" >/dev/null
admin role show demo >/dev/null 2>&1 ||
  admin role add demo --pub 'demo.>' --sub 'demo.>' --sub '_INBOX.>' --allow-responses >/dev/null
password=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
if admin user show demo >/dev/null 2>&1; then
  printf '%s\n' "$password" | admin user passwd demo --password-stdin >/dev/null
else
  printf '%s\n' "$password" | admin user add demo --account demo --role demo --password-stdin >/dev/null
fi

"$pbn" up --dir "$dir" --port "$port" &
up_pid=$!
trap 'kill -INT $up_pid 2>/dev/null || true; wait $up_pid 2>/dev/null || true' EXIT INT TERM

# Poll until the demo user gets through the callout (pbn and nats-server need a moment).
for _ in $(seq 1 60); do
  if printf '%s\n' "$password" | "$pbn" check --server "nats://127.0.0.1:$port" --user demo \
      --subject demo.hello --password-stdin --timeout 2s 2>/dev/null; then
    ok=1
    break
  fi
  kill -0 "$up_pid" 2>/dev/null || { echo "pbn up exited; see $dir/nats-server.log" >&2; exit 1; }
  sleep 0.5
done
[ "${ok:-}" = 1 ] || { echo "the demo login did not succeed in time" >&2; exit 1; }

cat <<MSG

pbn is running: nats-server on 127.0.0.1:$port, pbn answering its auth callout.
Demo user (password shown once): user demo, password $password
  Go, Python, C, Rust, NATS CLI:  nats://demo:$password@127.0.0.1:$port
  JavaScript (ignores credentials in the URL):
    connect({servers: "nats://127.0.0.1:$port", user: "demo", pass: "$password"})
It may publish and subscribe on demo.> (and receive replies on _INBOX.>).
Manage records while it runs (through the service, with the admin creds pbn wrote):
  $pbn admin --server nats://127.0.0.1:$port --creds $dir/admin.creds user list
Press Ctrl-C to stop.
MSG
[ -n "${PBN_QUICKSTART_EXIT:-}" ] && exit 0
wait "$up_pid"
