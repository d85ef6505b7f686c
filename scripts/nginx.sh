#!/usr/bin/env bash
# A real rate limiter for the storm benchmark: nginx `limit_req` on 127.0.0.1.
#
#   scripts/nginx.sh start        installs nginx if missing, starts it in a fresh temp dir and
#                                 prints shell assignments to eval:
#                                   STORM_NGINX_URL=http://127.0.0.1:PORT
#                                   STORM_NGINX_DIR=/tmp/storm-nginx.XXXXXX
#   scripts/nginx.sh stop [DIR]   stops the nginx started in DIR (default: $STORM_NGINX_DIR)
#                                 and removes DIR.
#   scripts/nginx.sh set-rate DIR RATE [ZONE]
#                                 sets the limit of zone ZONE (default: every zone) to RATE r/s
#                                 in DIR's config and reloads nginx; returns once the new
#                                 workers run. A reload keeps a zone's shared memory (its
#                                 buckets' state) and applies the new rate at once: nginx
#                                 stores the rate in the configuration, not in the zone.
#
# Locations (every limited path has its own bucket: the zones are keyed by `$uri`, so each
# strategy of the benchmark, on its own path, gets the full rate to itself):
#   POST|GET /hint/<lane>    STORM_RATE r/s (default 50), burst STORM_BURST (default 10) nodelay;
#                            over the limit: 429 with `Retry-After: 1`
#   POST|GET /nohint/<lane>  the same limit; over it: 429 without any hint
#   POST|GET /nohint/adaptive/<lane>
#                            429 without any hint, in a zone of its own (`adaptive`) for the
#                            storm's adaptive part, which changes its rate mid-run (set-rate):
#                            STORM_ADAPTIVE_RATE r/s (default 40), burst STORM_ADAPTIVE_BURST
#                            (default 5; 0: none) nodelay. Not 50 r/s: that is the gate's fixed
#                            release pace (20 ms), which would flatter a client that does not
#                            adapt.
#   POST|GET /shed/<lane>    load shedding, no rate limit: STORM_SHED_PERCENT % of requests
#                            (default 30), picked at random (split_clients on \$request_id),
#                            get `503 Service Overloaded` (Fireworks' JSON error shape, no
#                            Retry-After), the others 200
#   POST|GET /ok             always 200 with a small JSON body
# Admitted requests get 200 with the same small JSON body.
set -euo pipefail

rate=${STORM_RATE:-50}
burst=${STORM_BURST:-10}
adaptive_rate=${STORM_ADAPTIVE_RATE:-40}
adaptive_burst=${STORM_ADAPTIVE_BURST:-5}
shed_percent=${STORM_SHED_PERCENT:-30}

log() { echo "nginx.sh: $*" >&2; }
# shellcheck source=lib/servers.sh
. "$(dirname "$0")/lib/servers.sh"

ensure_nginx() {
    if command -v nginx >/dev/null 2>&1; then
        return
    fi
    log "nginx not found: installing it with apt-get"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2
}

# split_clients takes a percentage below 100 (the rest of the requests get the `*` branch).
check_shed_percent() {
    if ! [[ $shed_percent =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
        ! awk -v p="$shed_percent" 'BEGIN { exit !(p > 0 && p < 100) }'; then
        log "STORM_SHED_PERCENT must be a number above 0 and below 100, not '$shed_percent'"
        return 1
    fi
}

write_config() {
    local dir=$1 port=$2 user_line="" adaptive_limit_req
    # nginx refuses `burst=0`: no burst is written without one.
    if [ "$adaptive_burst" -eq 0 ]; then
        adaptive_limit_req="limit_req zone=adaptive;"
    else
        adaptive_limit_req="limit_req zone=adaptive burst=$adaptive_burst nodelay;"
    fi
    # Workers of a root master would run as `nobody`, which cannot use the 0700 temp dir.
    if [ "$(id -u)" -eq 0 ]; then
        user_line="user root root;"
    fi
    mkdir -p "$dir/tmp" "$dir/www"
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/json;

    limit_req_zone \$uri zone=hint:1m rate=${rate}r/s;
    limit_req_zone \$uri zone=nohint:1m rate=${rate}r/s;
    limit_req_zone \$uri zone=adaptive:1m rate=${adaptive_rate}r/s;
    limit_req_status 429;
    # Rejections are the point of the exercise: keep them out of the error log.
    limit_req_log_level info;

    # Load shedding: a random share of requests (\$request_id is 16 random bytes per request).
    split_clients "\${request_id}" \$shed {
        ${shed_percent}% 1;
        * 0;
    }

    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        log_not_found off;

        # \`return\` runs before \`limit_req\` (rewrite phase < preaccess phase), so admitted
        # requests reach the content phase: no file matches, and the 404 (or 405 for a POST)
        # is turned into the 200 answer.
        location /hint/ {
            limit_req zone=hint burst=$burst nodelay;
            error_page 429 = @limited_with_hint;
            error_page 404 405 =200 @ok;
        }

        location /nohint/ {
            limit_req zone=nohint burst=$burst nodelay;
            error_page 429 = @limited_without_hint;
            error_page 404 405 =200 @ok;
        }

        location /nohint/adaptive/ {
            $adaptive_limit_req
            error_page 429 = @limited_without_hint;
            error_page 404 405 =200 @ok;
        }

        location /shed/ {
            if (\$shed) {
                return 503 '{"error":{"object":"error","type":"service_unavailable","message":"Service Overloaded","code":null}}';
            }
            error_page 404 405 =200 @ok;
        }

        location = /ok {
            error_page 404 405 =200 @ok;
        }

        location @ok {
            return 200 '{"id":"storm","object":"chat.completion","choices":[]}';
        }

        location @limited_with_hint {
            add_header Retry-After 1 always;
            return 429 '{"error":{"object":"error","type":"rate_limit_error","message":"Request rate limit exceeded"}}';
        }

        location @limited_without_hint {
            return 429 '{"error":{"object":"error","type":"rate_limit_error","message":"Request rate limit exceeded"}}';
        }
    }
}
EOF
}

start() {
    check_shed_percent
    ensure_nginx
    local dir port
    dir=$(mktemp -d /tmp/storm-nginx.XXXXXX)
    for _ in 1 2 3; do
        port=$(free_port)
        write_config "$dir" "$port"
        if nginx -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/error.log"; then
            for _ in $(seq 1 50); do
                if listening "$port"; then
                    log "nginx listening on 127.0.0.1:$port (${rate} r/s, burst ${burst};" \
                        "adaptive zone ${adaptive_rate} r/s, burst ${adaptive_burst};" \
                        "shedding ${shed_percent} %), dir $dir"
                    echo "STORM_NGINX_URL=http://127.0.0.1:$port"
                    echo "STORM_NGINX_DIR=$dir"
                    echo "STORM_RATE=$rate"
                    echo "STORM_ADAPTIVE_RATE=$adaptive_rate"
                    echo "STORM_ADAPTIVE_BURST=$adaptive_burst"
                    echo "STORM_SHED_PERCENT=$shed_percent"
                    return
                fi
                sleep 0.1
            done
        fi
        log "nginx did not start on port $port, retrying; error log:"
        tail -n 5 "$dir/error.log" >&2 || true
    done
    log "giving up"
    return 1
}

stop() {
    local dir=${1:-${STORM_NGINX_DIR:-}}
    if [ -z "$dir" ] || [ ! -f "$dir/nginx.conf" ]; then
        log "stop: no nginx dir given (argument or STORM_NGINX_DIR)"
        return 1
    fi
    if [ -f "$dir/nginx.pid" ]; then
        local pid
        pid=$(cat "$dir/nginx.pid")
        nginx -p "$dir" -c "$dir/nginx.conf" -s quit 2>/dev/null || kill "$pid" 2>/dev/null || true
        wait_gone "$pid" || true
    fi
    rm -rf "$dir"
    log "stopped nginx in $dir"
}

# The worker processes of the nginx running in $1, one per line.
workers() {
    local master
    master=$(cat "$1/nginx.pid" 2>/dev/null) || return 0
    pgrep -P "$master" 2>/dev/null || cat "/proc/$master/task/$master/children" 2>/dev/null |
        tr ' ' '\n' | grep . || true
}

set_rate() {
    local dir=${1:-} rate=${2:-} zone=${3:-} name
    if [ -z "$dir" ] || [ ! -f "$dir/nginx.conf" ] || [ ! -f "$dir/nginx.pid" ]; then
        log "set-rate: $dir holds no running nginx"
        return 1
    fi
    if ! [[ $rate =~ ^[1-9][0-9]*$ ]]; then
        log "set-rate: the rate must be a whole number of requests per second, not '$rate'"
        return 1
    fi
    name=${zone:-[a-z0-9_]+}
    if ! grep -Eq "limit_req_zone .* zone=${name}:" "$dir/nginx.conf"; then
        log "set-rate: no zone '$zone' in $dir/nginx.conf"
        return 1
    fi
    sed -E -i "s/(limit_req_zone .* zone=${name}:[^ ]+ rate=)[0-9]+r\/s;/\1${rate}r\/s;/" \
        "$dir/nginx.conf"
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/error.log"
    local before after
    before=$(workers "$dir")
    nginx -p "$dir" -c "$dir/nginx.conf" -s reload 2>>"$dir/error.log"
    # The reload is asynchronous: wait until a worker started from the new configuration runs
    # (the old ones finish their requests in flight and close their connections).
    for _ in $(seq 1 100); do
        after=$(workers "$dir")
        if [ -n "$(comm -13 <(sort <<<"$before") <(sort <<<"$after") | grep .)" ]; then
            log "set-rate: zone ${zone:-(every zone)} now ${rate} r/s"
            return
        fi
        sleep 0.02
    done
    log "set-rate: reloaded, but no new worker appeared within 2 s"
}

case ${1:-} in
    start) start ;;
    stop) stop "${2:-}" ;;
    set-rate) set_rate "${2:-}" "${3:-}" "${4:-}" ;;
    *)
        echo "usage: $0 start | stop [DIR] | set-rate DIR RATE [ZONE]" >&2
        exit 2
        ;;
esac
