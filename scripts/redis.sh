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
#   scripts/redis.sh start-tls    the same with TLS only (`--port 0 --tls-port PORT`), its
#                                 certificate signed by a throwaway authority made now with the
#                                 openssl CLI (for 127.0.0.1 and localhost); also prints
#                                   REDIS_URL=rediss://127.0.0.1:PORT
#                                   REDIS_CA=DIR/ca.pem     (RedisConfig::with_ca_cert)
#   scripts/redis.sh start-cluster  three masters (`--cluster-enabled yes`, no replicas) joined
#                                 by `redis-cli --cluster create`; prints REDIS_URL (one node),
#                                 REDIS_CLUSTER=1 and REDIS_DIR.
#   REDIS_USER=name REDIS_PASSWORD=pw scripts/redis.sh start|start-tls|start-cluster
#                                 adds that ACL user (all keys and commands) and puts it in
#                                 REDIS_URL (redis://name:pw@...).
#   scripts/redis.sh stop [DIR]   stops the redis-server(s) started in DIR (default: $REDIS_DIR,
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
# shellcheck source=lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

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

# Whether everything the tests and `start*` use is here: redis-server (with TLS), redis-cli
# (cluster create) and the openssl CLI (test certificates).
have_all() {
    redis_bin >/dev/null && command -v redis-cli >/dev/null 2>&1 &&
        command -v openssl >/dev/null 2>&1
}

install() {
    apt_install "$lock_file" have_all redis-server redis-tools openssl
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

# Extra redis-server arguments for the ACL user of REDIS_USER / REDIS_PASSWORD, if set.
acl_args=()
auth=""
if [ -n "${REDIS_USER:-}" ]; then
    acl_args=(--user "$REDIS_USER" on ">${REDIS_PASSWORD:-}" '~*' '&*' '+@all')
    auth="$REDIS_USER:${REDIS_PASSWORD:-}@"
fi

# Makes DIR/ca.pem, DIR/server.pem and DIR/server.key (P-256, one day): a throwaway authority
# and a certificate it signed for 127.0.0.1 and localhost.
make_certs() {
    local dir=$1 ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
    printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' \
        >"$dir/server.ext"
    openssl req -x509 -nodes "${ec[@]}" -days 1 -subj "/CN=tower-reliability test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -nodes "${ec[@]}" -subj /CN=127.0.0.1 \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    openssl x509 -req -days 1 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
}

# Starts one daemonized redis-server in DIR (its pid in DIR/redis.pid) on a free port with the
# extra arguments; prints the port. `{port}` in an argument is replaced by the port, `{bus}`
# by a second free port.
spawn() {
    local dir=$1 bin port bus ready
    shift
    bin=$(redis_bin)
    for _ in 1 2 3; do
        port=$(free_port)
        bus=$(free_port)
        local args=()
        for arg in "$@"; do
            arg=${arg//\{port\}/$port}
            args+=("${arg//\{bus\}/$bus}")
        done
        rm -f "$dir/redis.pid"
        if "$bin" --port "$port" --bind 127.0.0.1 --protected-mode no \
            --save '' --appendonly no \
            --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" \
            --logfile "$dir/redis.log" "${args[@]}" 2>>"$dir/redis.log"; then
            ready=""
            for _ in $(seq 1 50); do
                if [ "$*" != "${*/--tls-port/}" ]; then
                    # TLS only: wait for the TLS port to listen.
                    if listening "$port"; then ready=1; break; fi
                elif pong "$port" 2>/dev/null; then
                    ready=1
                    break
                fi
                sleep 0.1
            done
            if [ -n "$ready" ]; then
                echo "$port"
                return
            fi
        fi
        log "redis-server did not start on port $port, retrying; log:"
        tail -n 5 "$dir/redis.log" >&2 || true
        if [ -f "$dir/redis.pid" ]; then
            kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
        fi
    done
    log "giving up"
    return 1
}

start() {
    install
    local dir port
    dir=$(mktemp -d /tmp/tower-reliability-redis.XXXXXX)
    if ! port=$(spawn "$dir" "${acl_args[@]}"); then
        rm -rf "$dir"
        return 1
    fi
    log "redis-server listening on 127.0.0.1:$port, dir $dir"
    echo "REDIS_URL=redis://${auth}127.0.0.1:$port"
    echo "REDIS_DIR=$dir"
}

start_tls() {
    install
    local dir port
    dir=$(mktemp -d /tmp/tower-reliability-redis.XXXXXX)
    make_certs "$dir"
    # The plain port is 0 (off): `{port}` becomes the TLS port.
    if ! port=$(spawn "$dir" --tls-port '{port}' --port 0 \
        --tls-cert-file "$dir/server.pem" --tls-key-file "$dir/server.key" \
        --tls-ca-cert-file "$dir/ca.pem" --tls-auth-clients no "${acl_args[@]}"); then
        rm -rf "$dir"
        return 1
    fi
    log "redis-server (TLS) listening on 127.0.0.1:$port, dir $dir"
    echo "REDIS_URL=rediss://${auth}127.0.0.1:$port"
    echo "REDIS_CA=$dir/ca.pem"
    echo "REDIS_DIR=$dir"
}

start_cluster() {
    install
    local dir ports=() port
    dir=$(mktemp -d /tmp/tower-reliability-redis.XXXXXX)
    for n in 1 2 3; do
        mkdir "$dir/node$n"
        if ! port=$(spawn "$dir/node$n" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 1000 --cluster-require-full-coverage no \
            --cluster-port '{bus}' "${acl_args[@]}"); then
            stop "$dir"
            return 1
        fi
        ports+=("127.0.0.1:$port")
    done
    local cli=(redis-cli)
    if [ -n "${REDIS_USER:-}" ]; then
        cli+=(--user "$REDIS_USER" --pass "${REDIS_PASSWORD:-}" --no-auth-warning)
    fi
    if ! "${cli[@]}" --cluster create "${ports[@]}" --cluster-replicas 0 --cluster-yes >&2; then
        log "redis-cli --cluster create failed"
        stop "$dir"
        return 1
    fi
    for _ in $(seq 1 100); do
        if "${cli[@]}" -p "${ports[0]#127.0.0.1:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
            log "Redis Cluster of 3 masters on ${ports[*]}, dir $dir"
            echo "REDIS_URL=redis://${auth}${ports[0]}"
            echo "REDIS_CLUSTER=1"
            echo "REDIS_DIR=$dir"
            return
        fi
        sleep 0.1
    done
    log "the cluster did not become healthy"
    stop "$dir"
    return 1
}

stop() {
    local dir=${1:-${REDIS_DIR:-}}
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        log "stop: no redis dir given (argument or REDIS_DIR)"
        return 1
    fi
    local pidfile pid
    for pidfile in "$dir"/redis.pid "$dir"/node*/redis.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
    log "stopped redis-server(s) in $dir"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    start-tls) start_tls ;;
    start-cluster) start_cluster ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 install | start | start-tls | start-cluster | stop [DIR]" >&2
        exit 2
        ;;
esac
