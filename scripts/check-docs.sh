#!/usr/bin/env bash
# Runs every `sh` block of docs/operations.md, in order, in one shell, against a live
# server on the sample site (fresh data directory, free ports). Fails on the first
# command that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v jq >/dev/null || { echo "jq is missing (the test command installs it)" >&2; exit 1; }
cargo build -q -p config-backup-server
export PATH="$root/target/debug:$PATH"

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cp -r examples/site "$work/site"
git init -q --bare --initial-branch=main "$work/remote.git"
export CONFIG_BACKUP_DATA_DIR="$work/data" CONFIG_BACKUP_SOURCE_ROOT="$work/site" GIT_BACKUP_REPO="$work/remote.git"
# Signed history, as the README sets it up: the manual runbook verifies its commit.
ssh-keygen -q -t ed25519 -N '' -C 'config-backup signing' -f "$work/signing_ed25519"
export CONFIG_BACKUP_SIGNING_KEY="$work/signing_ed25519" ALLOWED_SIGNERS="$work/allowed_signers"
config-backup-server allowed-signers > "$ALLOWED_SIGNERS"
export GRPC_LISTEN_ADDR="127.0.0.1:$(free_port)" HTTP_LISTEN_ADDR="127.0.0.1:$(free_port)" METRICS_LISTEN_ADDR="127.0.0.1:$(free_port)"
config-backup-server serve >"$work/server.log" 2>&1 &
server_pid=$!

export GRPC="$GRPC_LISTEN_ADDR" API="http://$HTTP_LISTEN_ADDR" METRICS="http://$METRICS_LISTEN_ADDR"
export SITE="$work/site" BACKUP_REPO="$work/remote.git" SECRETS_KEY="$work/data/secrets.key" DEPLOY="$root/deploy"
for _ in $(seq 1 100); do
    curl -sf "$API/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -sf "$API/healthz" >/dev/null || { cat "$work/server.log"; echo "the server did not start" >&2; exit 1; }
# Wait for the first backup the server makes at start.
for _ in $(seq 1 100); do
    [ "$(git --git-dir="$work/remote.git" rev-list --count main 2>/dev/null || echo 0)" -ge 4 ] && break
    sleep 0.2
done

# Extract the sh blocks, in order.
script="$work/docs.sh"
awk '/^```sh$/{inblock=1; next} /^```/{if(inblock){print ""}; inblock=0; next} inblock{print}' docs/operations.md > "$script"
blocks=$(grep -c '^```sh$' docs/operations.md)
echo "running $blocks sh blocks of docs/operations.md"
( cd "$work" && bash -euo pipefail "$script" ) > "$work/docs.out" 2>&1 || {
    cat "$work/docs.out"; echo "--- server log"; tail -20 "$work/server.log"; echo "a command of docs/operations.md failed" >&2; exit 1; }
grep -q ROLLBACK_STATE_SUCCESS "$work/docs.out" || { cat "$work/docs.out"; echo "the runbook's rollback did not succeed" >&2; exit 1; }
[ -n "${DOCS_VERBOSE:-}" ] && cat "$work/docs.out"
echo "docs: $blocks passed, 0 failed"
