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
#   scripts/prometheus.sh picture   docs/prometheus-graph.png: Prometheus' graph page (headless
#                                   Chromium, installed with apt-get if missing) with the
#                                   dashboard's queries, after PICTURE_SECONDS (150) of the example
#                                   serving PICTURE_RATE (50) requests a second.
#
#   eval "$(scripts/prometheus.sh start 127.0.0.1:9000)"; ...; scripts/prometheus.sh stop
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lock_file=/tmp/tower-reliability-prometheus-install.lock
rules=$root/docs/prometheus-alerts.yml

log() { echo "prometheus.sh: $*" >&2; }
# shellcheck source=lib/servers.sh
. "$(dirname "$0")/lib/servers.sh"
# shellcheck source=lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

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

# Succeeds when every program named is there.
installed() {
    local program
    for program in "$@"; do
        find_bin "$program" >/dev/null || return 1
    done
}

# The programs each package brings.
have_prometheus() { installed prometheus promtool; }
have_chromium() { installed chromium; }

install() {
    apt_install "$lock_file" have_prometheus prometheus
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

# Percent-encodes $1 for a URL's query string (ASCII).
urlencode() {
    local text=$1 out="" c i
    for ((i = 0; i < ${#text}; i++)); do
        c=${text:i:1}
        case $c in
            [a-zA-Z0-9.~_-]) out+=$c ;;
            *) printf -v c '%%%02X' "'$c" && out+=$c ;;
        esac
    done
    echo "$out"
}

# docs/prometheus-graph.png: Prometheus' graph page, in headless Chromium, after
# PICTURE_SECONDS (default 150) of the example serving PICTURE_RATE requests a second
# (default 50: above the test server's limit of 40), with the dashboard's queries over 10 s.
picture() {
    local seconds=${PICTURE_SECONDS:-150} rate=${PICTURE_RATE:-50}
    install
    apt_install "$lock_file" have_chromium chromium
    (cd "$root" && cargo build --quiet --example prometheus --all-features)
    local exporter example
    exporter=$(free_port)
    local PROMETHEUS_URL PROMETHEUS_DIR
    eval "$(start "127.0.0.1:$exporter")"
    "${CARGO_TARGET_DIR:-$root/target}/debug/examples/prometheus" --port "$exporter" \
        --serve --rate "$rate" >"$PROMETHEUS_DIR/example.log" 2>&1 </dev/null &
    example=$!
    # shellcheck disable=SC2064 # expand now: the trap must stop these two
    trap "kill -INT $example 2>/dev/null || true; stop '$PROMETHEUS_DIR'" EXIT
    log "the example serves $rate requests a second; the picture in $seconds s"
    sleep "$seconds"

    local attempts=tower_reliability_attempts_total window='[10s]' query="" i=0 expr
    local exprs=(
        "sum by (outcome) (rate($attempts$window))"
        "sum(rate($attempts$window)) / (sum(rate($attempts$window)) - (sum(rate(tower_reliability_retries_total$window)) or vector(0)))"
        "(sum(rate($attempts{outcome=\"response\", status=\"429\"}$window)) or vector(0)) / sum(rate($attempts{outcome=\"response\"}$window))"
        "histogram_quantile(0.99, sum by (le) (rate(tower_reliability_gate_wait_seconds_bucket$window)))"
    )
    for expr in "${exprs[@]}"; do
        query+="g$i.expr=$(urlencode "$expr")&g$i.tab=0&g$i.range_input=${seconds}s&g$i.stacked=0&"
        i=$((i + 1))
    done
    chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
        --force-device-scale-factor=0.7 --window-size=1400,3000 --virtual-time-budget=15000 \
        --screenshot="$root/docs/prometheus-graph.png" "$PROMETHEUS_URL/graph?$query" \
        >"$PROMETHEUS_DIR/chromium.log" 2>&1
    log "wrote docs/prometheus-graph.png"
}

case ${1:-} in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    check) check ;;
    picture) picture ;;
    *)
        echo "usage: $0 install | start 127.0.0.1:PORT | stop [DIR] | check | picture" >&2
        exit 2
        ;;
esac
