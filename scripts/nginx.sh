#!/usr/bin/env bash
# A real rate limiter for the storm benchmark: nginx `limit_req` on 127.0.0.1.
#
#   scripts/nginx.sh start        installs nginx if missing, starts it in a fresh temp dir and
#                                 prints shell assignments to eval:
#                                   STORM_NGINX_URL=http://127.0.0.1:PORT
#                                   STORM_NGINX_DIR=/tmp/storm-nginx.XXXXXX
#   scripts/nginx.sh stop [DIR]   stops the nginx started in DIR (default: $STORM_NGINX_DIR)
#                                 and removes DIR.
#
# Locations (every limited path has its own bucket: the zones are keyed by `$uri`, so each
# strategy of the benchmark, on its own path, gets the full rate to itself):
#   POST|GET /hint/<lane>    STORM_RATE r/s (default 50), burst STORM_BURST (default 10) nodelay;
#                            over the limit: 429 with `Retry-After: 1`
#   POST|GET /nohint/<lane>  the same limit; over it: 429 without any hint
#   POST|GET /ok             always 200 with a small JSON body
# Admitted requests get 200 with the same small JSON body.
set -euo pipefail

rate=${STORM_RATE:-50}
burst=${STORM_BURST:-10}

log() { echo "nginx.sh: $*" >&2; }

ensure_nginx() {
    if command -v nginx >/dev/null 2>&1; then
        return
    fi
    log "nginx not found: installing it with apt-get"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    log "no free port found"
    return 1
}

write_config() {
    local dir=$1 port=$2 user_line=""
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
    limit_req_status 429;
    # Rejections are the point of the exercise: keep them out of the error log.
    limit_req_log_level info;

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
    ensure_nginx
    local dir port
    dir=$(mktemp -d /tmp/storm-nginx.XXXXXX)
    for _ in 1 2 3; do
        port=$(free_port)
        write_config "$dir" "$port"
        if nginx -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/error.log"; then
            for _ in $(seq 1 50); do
                if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                    log "nginx listening on 127.0.0.1:$port (${rate} r/s, burst ${burst}), dir $dir"
                    echo "STORM_NGINX_URL=http://127.0.0.1:$port"
                    echo "STORM_NGINX_DIR=$dir"
                    echo "STORM_RATE=$rate"
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
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$dir"
    log "stopped nginx in $dir"
}

case ${1:-} in
    start) start ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 start | stop [DIR]" >&2
        exit 2
        ;;
esac
