# Shared by scripts/nginx.sh and scripts/redis.sh (sourced; each defines `log` first): finding
# a free port on 127.0.0.1 and waiting for a stopped server's process to go.

# Whether something accepts connections on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's range
# for outgoing connections (so no client's ephemeral port takes it while the server restarts).
free_port() {
    local low=20000 high=32767 eph_low port
    if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
        read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range || true
        if [ "${eph_low:-0}" -gt 12000 ]; then
            high=$((eph_low - 1))
            low=$((high - 10000 > 10000 ? high - 10000 : 10000))
        fi
    fi
    for _ in $(seq 1 50); do
        port=$((low + RANDOM % (high - low + 1)))
        if ! listening "$port"; then
            echo "$port"
            return
        fi
    done
    log "no free port found"
    return 1
}

# Waits up to 5 s for process $1 to end; returns 1 if it is still there.
wait_gone() {
    for _ in $(seq 1 50); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2>/dev/null
}
