#!/usr/bin/env bash
# The storm benchmark against a real rate limiter: starts nginx (scripts/nginx.sh), runs
# `cargo bench --bench storm --features testing -- ARGS` (release build), stops nginx on exit.
#
#   scripts/storm.sh                     full run (about 3 minutes); plots copied to docs/
#   STORM_SECONDS=3 scripts/storm.sh     smoke run (under a minute once built)
#   scripts/storm.sh nginx | outage      one part only
#
# Durations and rates: see benches/common/storm/config.rs (STORM_SECONDS, STORM_RATE, ...).
# The tables are also saved to target/storm/report.md; the plots are target/storm/*.svg.
set -euo pipefail
cd "$(dirname "$0")/.."

nginx_env=$(scripts/nginx.sh start)
eval "$nginx_env"
export STORM_NGINX_URL STORM_RATE
trap 'scripts/nginx.sh stop "$STORM_NGINX_DIR"' EXIT

out_dir=${STORM_OUT_DIR:-${CARGO_TARGET_DIR:-target}/storm}
mkdir -p "$out_dir"
cargo bench --bench storm --features testing -- "$@" | tee "$out_dir/report.md"

# Only a full run (default durations, both parts) is worth publishing.
full=yes
for knob in STORM_SECONDS STORM_DEADLINE_SECONDS STORM_OUTAGE_SECONDS STORM_OUTAGE_RATE \
    STORM_OFFERED_FACTOR STORM_SEED; do
    if [ -n "${!knob:-}" ]; then
        full=no
    fi
done
if [ "$#" -gt 0 ] || [ "${STORM_RATE}" != 50 ]; then
    full=no
fi
if [ "$full" = yes ]; then
    mkdir -p docs
    cp "$out_dir"/storm-*.svg docs/
    echo "storm.sh: full run: plots copied to docs/" >&2
else
    echo "storm.sh: not a full run: plots left in $out_dir" >&2
fi
