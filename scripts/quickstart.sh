#!/usr/bin/env bash
# pbn quickstart: installs nats-server if missing, builds pbn, creates a demo account, role and
# user, runs `pbn up`, proves a publish/subscribe round trip as the demo user through the auth
# callout, and prints how to connect. The demo password is generated on the first run and kept in
# $PBN_DIR/demo.password (mode 0600), so reruns keep the same password and URL.
# Ctrl-C stops pbn and nats-server. Environment: PBN_DIR (default pbn-data), PBN_PORT (4222).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=${PBN_DIR:-pbn-data}
port=${PBN_PORT:-4222}
store="$dir/pbn.redb"

scripts/install-nats-server.sh
echo "building pbn (release)..."
cargo build --release --bin pbn
pbn="${CARGO_TARGET_DIR:-target}/release/pbn"
export PBN_NATS_SERVER="$PWD/.tools/bin/nats-server"

mkdir -p "$dir"
[ -f "$store" ] || "$pbn" init --store "$store" >/dev/null
admin() { "$pbn" admin --store "$store" "$@"; }
admin account show demo >/dev/null 2>&1 || admin account add demo --description "quickstart demo" >/dev/null
admin role show demo >/dev/null 2>&1 ||
  admin role add demo --pub 'demo.>' --sub 'demo.>' --sub '_INBOX.>' --allow-responses >/dev/null
password_file="$dir/demo.password"
if [ -s "$password_file" ]; then
  password=$(cat "$password_file")
else
  password=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  (umask 077 && printf '%s\n' "$password" >"$password_file.tmp")
  mv -f "$password_file.tmp" "$password_file"
fi
chmod 0600 "$password_file"
if ! admin user show demo >/dev/null 2>&1; then
  printf '%s\n' "$password" | admin user add demo --account demo --role demo --password-stdin >/dev/null
else
  # The user exists: make its password the kept one (a no-op when it already is).
  printf '%s\n' "$password" | admin user passwd demo --password-stdin >/dev/null
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
  kill -0 "$up_pid" 2>/dev/null || { echo "pbn up exited (its error is above)" >&2; exit 1; }
  sleep 0.5
done
[ "${ok:-}" = 1 ] || { echo "the demo login did not succeed in time" >&2; exit 1; }

cat <<MSG

pbn is running: nats-server on 127.0.0.1:$port, pbn answering its auth callout.
Demo user (the password is kept in $password_file and stays the same on reruns):
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
