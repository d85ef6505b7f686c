#!/usr/bin/env bash
# A real Redis for the fleet-store (`RedisStore`, feature `redis`) tests and benchmark.
#
#   scripts/redis.sh install      installs the Debian package `redis-server` if `redis-server` is
#                                 missing (apt-get; as root, or through `sudo -n`), without
#                                 starting the system service: tests start their own instances.
#                                 Idempotent and silent when redis-server is already there;
#                                 concurrent callers are serialised with flock.
#   scripts/redis.sh start        installs redis-server if missing, starts a throwaway one
#                                 (no persistence) on a free 127.0.0.1 port in a fresh temp dir
#                                 and prints shell assignments to eval:
#                                   REDIS_URL=redis://127.0.0.1:PORT
#                                   REDIS_DIR=/tmp/tower-reliability-redis.XXXXXX
#   scripts/redis.sh stop [DIR]   stops the redis-server started in DIR (default: $REDIS_DIR,
#                                 when exported) and removes DIR.
#
#   eval "$(scripts/redis.sh start)"; ...; scripts/redis.sh stop "$REDIS_DIR"
#
# The Rust tests do not use `start`/`stop`: `tests/redis_support` spawns redis-server itself
# (so it can stop and restart it mid-test); it calls `install` when redis-server is missing.
set -euo pipefail

lock_file=/tmp/tower-reliability-redis-install.lock

log() { echo "redis.sh: $*" >&2; }
# shellcheck source=lib/servers.sh
. "$(dirname "$0")/lib/servers.sh"

# Prints the path of redis-server, or fails.
redis_bin() {
    if command -v redis-server 2>/dev/null; then
        return 0
    fi
    if [ -x /usr/bin/redis-server ]; then
        echo /usr/bin/redis-server
        return 0
    fi
    return 1
}

install() {
    if redis_bin >/dev/null; then
        return 0
    fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            log "redis-server is missing and cannot be installed: not root and no sudo."
            log "install the Debian package redis-server (apt-get install redis-server) and retry."
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "redis-server is missing and apt-get is not available: install redis-server by hand."
        return 1
    fi

    # One apt run at a time, even with several test binaries calling us at once.
    exec 9>>"$lock_file"
    if ! flock -w 900 9; then
        log "timed out waiting for $lock_file (another install still running?)"
        return 1
    fi
    # Someone else may have installed it while we waited for the lock.
    if redis_bin >/dev/null; then
        return 0
    fi

    # Keep the package's postinst from starting the system service (on port 6379): an
    # invoke-rc.d / deb-systemd-invoke policy that denies every action, only while we install,
    # and only if the machine has no policy of its own (Docker images usually ship a deny-all).
    local policy=/usr/sbin/policy-rc.d created_policy=""
    if [ ! -e "$policy" ]; then
        if printf '#!/bin/sh\n# scripts/redis.sh install: do not start services\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy"; then
            created_policy=1
            trap '"${sudo[@]}" rm -f "$policy"' EXIT
        fi
    fi

    log "redis-server not found: installing the Debian package redis-server with apt-get"
    local started=$SECONDS
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends redis-server >&2

    if [ -n "$created_policy" ]; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi

    local bin
    if ! bin=$(redis_bin); then
        log "apt-get finished but redis-server is still not found"
        return 1
    fi
    log "installed $("$bin" --version | head -n 1) in $((SECONDS - started)) s"
}

# Succeeds when the server on 127.0.0.1:$1 answers PING with +PONG.
# (A subshell: a failed `exec` redirection must not end the script.)
pong() (
    reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    read -r -t 1 reply <&3 || true
    [ "${reply%$'\r'}" = "+PONG" ]
)

start() {
    install
    local bin dir port
    bin=$(redis_bin)
    dir=$(mktemp -d /tmp/tower-reliability-redis.XXXXXX)
    for _ in 1 2 3; do
        port=$(free_port)
        rm -f "$dir/redis.pid"
        if "$bin" --port "$port" --bind 127.0.0.1 --protected-mode no \
            --save '' --appendonly no \
            --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" \
            --logfile "$dir/redis.log" 2>>"$dir/redis.log"; then
            for _ in $(seq 1 50); do
                if pong "$port" 2>/dev/null; then
                    log "redis-server listening on 127.0.0.1:$port, dir $dir"
                    echo "REDIS_URL=redis://127.0.0.1:$port"
                    echo "REDIS_DIR=$dir"
                    return
                fi
                sleep 0.1
            done
        fi
        log "redis-server did not start on port $port, retrying; log:"
        tail -n 5 "$dir/redis.log" >&2 || true
        if [ -f "$dir/redis.pid" ]; then
            kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
        fi
    done
    rm -rf "$dir"
    log "giving up"
    return 1
}

stop() {
    local dir=${1:-${REDIS_DIR:-}}
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        log "stop: no redis dir given (argument or REDIS_DIR)"
        return 1
    fi
    if [ -f "$dir/redis.pid" ]; then
        local pid
        pid=$(cat "$dir/redis.pid")
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    log "stopped redis-server in $dir"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 install | start | stop [DIR]" >&2
        exit 2
        ;;
esac
