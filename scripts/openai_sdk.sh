#!/usr/bin/env bash
# The axum gateway example behind the official OpenAI Python SDK (scripts/openai_sdk.py):
# installs the `openai` package from PyPI into a virtualenv under the cargo target directory,
# builds and starts examples/axum_gateway on a free 127.0.0.1 port against its in-process
# upstream, runs the SDK scenarios (outage, stalled stream, 413, long 429...), and stops the
# gateway. Takes about a minute (the outage's backoff and the stream's 30 s idle-read timeout).
#
#   scripts/openai_sdk.sh             pinned SDK version (OPENAI_VERSION, default below)
#   OPENAI_VERSION=1.109.1 scripts/openai_sdk.sh
#
# Needs python3 with the venv module; the gateway's log is left in $target/openai-sdk/gateway.log.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "openai_sdk.sh: $*" >&2; }
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh

version="${OPENAI_VERSION:-3.57.0}"
target="${CARGO_TARGET_DIR:-target}"
work="$target/openai-sdk"
venv="$work/venv-$version"
mkdir -p "$work"

if [ ! -x "$venv/bin/python" ]; then
    log "installing openai==$version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$version"
fi

log "building the example"
# --all-features: the same build as .ci/run's `cargo build --examples --all-features`, reused.
cargo build --quiet --example axum_gateway --all-features

port="$(free_port)"
gateway_log="$work/gateway.log"
PORT="$port" GATEWAY_UPSTREAM=local RUST_LOG="axum_gateway=info,tower_reliability=debug" \
    "$target/debug/examples/axum_gateway" >"$gateway_log" 2>&1 &
gateway_pid=$!
stop() {
    kill "$gateway_pid" 2>/dev/null || true
    wait_gone "$gateway_pid" || kill -9 "$gateway_pid" 2>/dev/null || true
}
trap stop EXIT

for _ in $(seq 1 100); do
    listening "$port" && break
    kill -0 "$gateway_pid" 2>/dev/null || { cat "$gateway_log" >&2; log "the gateway exited"; exit 1; }
    sleep 0.1
done
listening "$port" || { log "the gateway did not listen on $port"; exit 1; }

"$venv/bin/python" scripts/openai_sdk.py "http://127.0.0.1:$port"
