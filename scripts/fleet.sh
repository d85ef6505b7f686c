#!/usr/bin/env bash
# The fleet benchmark: 4 processes against one nginx `limit_req`, each with its own rate-limit
# state or sharing it through Redis. Starts nginx (scripts/nginx.sh) and Redis
# (scripts/redis.sh), runs `cargo bench --bench fleet --features testing,redis -- ARGS`
# (release build), stops both on exit.
#
#   scripts/fleet.sh                     full run (about 2 minutes once built)
#   FLEET_SECONDS=8 scripts/fleet.sh     quick run
#   scripts/fleet.sh local redis         only those modes (local, redis, cluster, uneven, off, single)
#   scripts/fleet.sh uneven              4 processes sharing through Redis, one offered 70 % of the
#                                        load: each process's share follows its demand
#
# Durations and rates: see benches/common/fleet/config.rs (FLEET_SECONDS, STORM_RATE, ...).
# The cluster mode runs on a 3-master Redis Cluster (scripts/redis.sh start-cluster).
# Without Redis (redis.sh cannot start it) the redis modes are skipped; without nginx nothing runs.
# The report is also saved to target/fleet/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."

STORM_NGINX_DIR=""
REDIS_DIR=""
CLUSTER_DIR=""
cleanup() {
    if [ -n "$REDIS_DIR" ]; then
        scripts/redis.sh stop "$REDIS_DIR" || true
    fi
    if [ -n "$CLUSTER_DIR" ]; then
        scripts/redis.sh stop "$CLUSTER_DIR" || true
    fi
    if [ -n "$STORM_NGINX_DIR" ]; then
        scripts/nginx.sh stop "$STORM_NGINX_DIR" || true
    fi
}
trap cleanup EXIT

if nginx_env=$(scripts/nginx.sh start); then
    eval "$nginx_env"
    export STORM_NGINX_URL STORM_RATE
else
    echo "fleet.sh: nginx did not start: the benchmark will say it is skipped" >&2
    unset STORM_NGINX_URL
fi

if [ ! -x scripts/redis.sh ] && [ ! -f scripts/redis.sh ]; then
    echo "fleet.sh: scripts/redis.sh is missing: the redis mode is skipped" >&2
    unset REDIS_URL
elif redis_env=$(bash scripts/redis.sh start); then
    eval "$redis_env"
    export REDIS_URL
else
    echo "fleet.sh: Redis did not start: the redis mode is skipped" >&2
    unset REDIS_URL
fi

if [ -f scripts/redis.sh ] && cluster_env=$(bash scripts/redis.sh start-cluster); then
    REDIS_CLUSTER_URL=$(sed -n 's/^REDIS_URL=//p' <<<"$cluster_env")
    CLUSTER_DIR=$(sed -n 's/^REDIS_DIR=//p' <<<"$cluster_env")
    export REDIS_CLUSTER_URL
else
    echo "fleet.sh: the Redis Cluster did not start: the cluster mode is skipped" >&2
    unset REDIS_CLUSTER_URL
fi

out_dir=${CARGO_TARGET_DIR:-target}/fleet
mkdir -p "$out_dir"
cargo bench --bench fleet --features testing,redis -- "$@" | tee "$out_dir/report.md"
echo "fleet.sh: report saved to $out_dir/report.md" >&2
