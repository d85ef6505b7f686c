#!/usr/bin/env bash
# A real Prometheus for the metrics example (`examples/prometheus`), the dashboard's queries and
# the alert rules.
#
#   scripts/prometheus.sh install   installs the Debian package `prometheus` (server and
#                                   promtool) if missing (apt-get update, then apt-get install;
#                                   as root, or through `sudo -n`), without starting the system
#                                   service. Idempotent and silent when it is already there;
#                                   concurrent callers are serialised with flock.
#   scripts/prometheus.sh start TARGET
#                                   installs it if missing, starts a throwaway Prometheus on a
#                                   free 127.0.0.1 port in a fresh temp dir, scraping
#                                   http://TARGET/metrics (TARGET = 127.0.0.1:PORT) every 1 s
#                                   with the rules of docs/prometheus-alerts.yml loaded, and
#                                   prints shell assignments to eval:
#                                     PROMETHEUS_URL=http://127.0.0.1:PORT
#                                     PROMETHEUS_DIR=/tmp/tower-reliability-prometheus.XXXXXX
#   scripts/prometheus.sh stop [DIR]
#                                   stops the Prometheus started in DIR (default:
#                                   $PROMETHEUS_DIR, when exported) and removes DIR.
#   scripts/prometheus.sh check     what .ci/run calls: `promtool check rules` on
#                                   docs/prometheus-alerts.yml and `promtool test rules` on its
#                                   unit tests (docs/prometheus-alerts.test.yml), then a
#                                   Prometheus started as
#                                   above scrapes `cargo run --example prometheus` while its load
#                                   runs; the example asks it the dashboard's queries
#                                   (docs/grafana-dashboard.json) and fails when an answer
#                                   disagrees with the run's own counts. Stops Prometheus in
#                                   every case.
#
#   eval "$(scripts/prometheus.sh start 127.0.0.1:9000)"; ...; scripts/prometheus.sh stop
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lock_file=/tmp/tower-reliability-prometheus-install.lock
rules=$root/docs/prometheus-alerts.yml

log() { echo "prometheus.sh: $*" >&2; }
# shellcheck source=lib/servers.sh
. "$(dirname "$0")/lib/servers.sh"

# Prints the path of the program $1 (prometheus or promtool), or fails.
find_bin() {
    if command -v "$1" 2>/dev/null; then
        return 0
    fi
    if [ -x "/usr/bin/$1" ]; then
        echo "/usr/bin/$1"
        return 0
    fi
    return 1
}

installed() {
    find_bin prometheus >/dev/null && find_bin promtool >/dev/null
}

install() {
    if installed; then
        return 0
    fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            log "prometheus is missing and cannot be installed: not root and no sudo."
            log "install the Debian package prometheus (apt-get install prometheus) and retry."
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "prometheus is missing and apt-get is not available: install prometheus by hand."
        return 1
    fi

    # One apt run at a time, even with several callers at once.
    exec 9>>"$lock_file"
    if ! flock -w 900 9; then
        log "timed out waiting for $lock_file (another install still running?)"
        return 1
    fi
    if installed; then
        return 0
    fi

    # Keep the package's postinst from starting the system service (on port 9090): a policy
    # that denies every action, only while we install, and only if the machine has none.
    local policy=/usr/sbin/policy-rc.d created_policy=""
    if [ ! -e "$policy" ]; then
        if printf '#!/bin/sh\n# scripts/prometheus.sh install: do not start services\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy"; then
            created_policy=1
            trap '"${sudo[@]}" rm -f "$policy"' EXIT
        fi
    fi

    log "prometheus not found: installing the Debian package prometheus with apt-get"
    local started=$SECONDS
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends prometheus >&2

    if [ -n "$created_policy" ]; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi

    if ! installed; then
        log "apt-get finished but prometheus or promtool is still not found"
        return 1
    fi
    log "installed $("$(find_bin prometheus)" --version 2>&1 | head -n 1) in $((SECONDS - started)) s"
}

# Writes DIR/prometheus.yml: one job scraping TARGET every second, the alert rules loaded.
write_config() {
    local dir=$1 target=$2
    cp "$rules" "$dir/alerts.yml"
    cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $dir/alerts.yml
scrape_configs:
  - job_name: tower-reliability
    static_configs:
      - targets: ['$target']
EOF
}

# Succeeds when the Prometheus on 127.0.0.1:$1 says it is ready.
ready() (
    reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r -t 1 reply <&3 || true
    [[ $reply == "HTTP/1."?" 200"* ]]
)

start() {
    local target=${1:-}
    if [[ ! $target =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
        log "start: give the exporter as 127.0.0.1:PORT"
        return 1
    fi
    install
    local bin dir port pid
    bin=$(find_bin prometheus)
    dir=$(mktemp -d /tmp/tower-reliability-prometheus.XXXXXX)
    write_config "$dir" "$target"
    for _ in 1 2 3; do
        port=$(free_port)
        "$bin" --config.file="$dir/prometheus.yml" \
            --web.listen-address="127.0.0.1:$port" \
            --storage.tsdb.path="$dir/data" \
            --storage.tsdb.retention.time=1d \
            --log.level=warn \
            >>"$dir/prometheus.log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$dir/prometheus.pid"
        for _ in $(seq 1 100); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if ready "$port" 2>/dev/null; then
                log "prometheus listening on 127.0.0.1:$port, scraping $target every 1 s, dir $dir"
                echo "PROMETHEUS_URL=http://127.0.0.1:$port"
                echo "PROMETHEUS_DIR=$dir"
                return
            fi
            sleep 0.1
        done
        log "prometheus did not start on port $port, retrying; log:"
        tail -n 5 "$dir/prometheus.log" >&2 || true
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
    log "giving up"
    return 1
}

stop() {
    local dir=${1:-${PROMETHEUS_DIR:-}}
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        log "stop: no prometheus dir given (argument or PROMETHEUS_DIR)"
        return 1
    fi
    if [ -f "$dir/prometheus.pid" ]; then
        local pid
        pid=$(cat "$dir/prometheus.pid")
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    log "stopped prometheus in $dir"
}

check() {
    install
    local promtool
    promtool=$(find_bin promtool)
    log "promtool check rules docs/prometheus-alerts.yml"
    "$promtool" check rules "$rules" >&2
    log "promtool test rules docs/prometheus-alerts.test.yml"
    "$promtool" test rules "$root/docs/prometheus-alerts.test.yml" >&2

    # The same features as `cargo build --examples --all-features`: nothing is rebuilt in CI.
    (cd "$root" && cargo build --quiet --example prometheus --all-features)
    local exporter
    exporter=$(free_port)
    local PROMETHEUS_URL PROMETHEUS_DIR
    eval "$(start "127.0.0.1:$exporter")"
    # shellcheck disable=SC2064 # expand now: the trap must stop this Prometheus
    trap "stop '$PROMETHEUS_DIR'" EXIT
    (cd "$root" && cargo run --quiet --example prometheus --all-features -- \
        --port "$exporter" --prometheus "$PROMETHEUS_URL")
}

case ${1:-} in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    check) check ;;
    *)
        echo "usage: $0 install | start 127.0.0.1:PORT | stop [DIR] | check" >&2
        exit 2
        ;;
esac
