#!/usr/bin/env bash
# The storm benchmark against a real rate limiter: starts nginx (scripts/nginx.sh), runs
# `cargo bench --bench storm --features testing -- ARGS` (release build), stops nginx on exit.
#
#   scripts/storm.sh                     full run (about 5 minutes); plots copied to docs/
#   STORM_SECONDS=3 STORM_ADAPTIVE_SECONDS=3 scripts/storm.sh
#                                        smoke run (about a minute once built)
#   scripts/storm.sh nginx | adaptive | shedding | outage
#                                        those parts only, any of them (not published)
#   scripts/storm.sh shedding outage     the two parts with server faults (load shedding, an
#                                        outage): about 2.5 minutes
#   scripts/storm.sh tokens models       the token mix and two models on one client: in
#                                        process, no nginx started (about 5 minutes)
#   scripts/storm.sh --src REV|DIR shedding outage
#                                        this checkout's benchmark and scripts over another
#                                        branch's library: src/ from git revision REV (a branch
#                                        of this repository) or from worktree DIR (uncommitted
#                                        changes included), in a copy under the target dir;
#                                        plots and report in target/storm-<name>. Needs REV's
#                                        Cargo.toml to match this one (it warns if not).
#
# The adaptive part halves nginx's limit mid-run itself (`scripts/nginx.sh set-rate`, in
# STORM_NGINX_DIR). Durations and rates: see benches/common/storm/config.rs (STORM_SECONDS,
# STORM_RATE, STORM_ADAPTIVE_SECONDS, STORM_SHED_PERCENT, STORM_FAULT_DEADLINE_SECONDS, ...).
# The tables are also saved to target/storm/report.md; the plots are target/storm/*.svg.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --src ]; then
    src=${2:?"--src needs a git revision or a worktree directory"}
    shift 2
    target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
    name=$(basename "$src" | tr -c 'A-Za-z0-9._\n-' '-')
    tree="$target/storm-src"
    rm -rf "$tree"
    mkdir -p "$tree"
    # This checkout's committed files, then the other library.
    # `tar -m`: every file dated now, so cargo rebuilds the library whatever it built before.
    git archive HEAD | tar -x -m -C "$tree"
    rm -rf "$tree/src"
    if [ -d "$src" ]; then
        cp -r "$src/src" "$tree/src"
        other_manifest=$(cat "$src/Cargo.toml")
    else
        git archive "$src" src | tar -x -m -C "$tree"
        other_manifest=$(git show "$src:Cargo.toml")
    fi
    if [ "$other_manifest" != "$(cat Cargo.toml)" ]; then
        echo "storm.sh: $src's Cargo.toml differs from this one's: using this one's" >&2
    fi
    # Cargo names a package's artifacts by a hash that leaves out where the package lies: built
    # from the copy under the same name, they would overwrite this checkout's and pass for
    # fresh in either. An extra (empty) feature gives the copy's artifacts names of their own.
    sed -i 's/^\[features\]$/[features]\nstorm-src = []/' "$tree/Cargo.toml"
    echo "storm.sh: measuring src/ of $src with this benchmark, in $tree" >&2
    export CARGO_TARGET_DIR="$target" STORM_FEATURES=testing,storm-src
    export STORM_OUT_DIR=${STORM_OUT_DIR:-$target/storm-$name}
    status=0
    "$tree/scripts/storm.sh" "$@" || status=$?
    rm -rf "$tree"
    exit "$status"
fi

# nginx only for the parts that use it (every part when none is named).
needs_nginx=yes
if [ "$#" -gt 0 ]; then
    needs_nginx=no
    for part in "$@"; do
        case "$part" in
            outage | tokens | models | priority) ;;
            *) needs_nginx=yes ;;
        esac
    done
fi
if [ "$needs_nginx" = yes ]; then
    nginx_env=$(scripts/nginx.sh start)
    eval "$nginx_env"
    export STORM_NGINX_URL STORM_NGINX_DIR STORM_RATE STORM_ADAPTIVE_RATE STORM_ADAPTIVE_BURST \
        STORM_SHED_PERCENT
    trap 'scripts/nginx.sh stop "$STORM_NGINX_DIR"' EXIT
fi

out_dir=${STORM_OUT_DIR:-${CARGO_TARGET_DIR:-target}/storm}
mkdir -p "$out_dir"
cargo bench --bench storm --features "${STORM_FEATURES:-testing}" -- "$@" | tee "$out_dir/report.md"

# Only a full run (default durations and rates, every part) is worth publishing.
full=yes
for knob in STORM_SECONDS STORM_DEADLINE_SECONDS STORM_OUTAGE_SECONDS STORM_OUTAGE_RATE \
    STORM_OFFERED_FACTOR STORM_SEED STORM_ADAPTIVE_SECONDS STORM_ADAPTIVE_PEERS \
    STORM_SHED_SECONDS STORM_SHED_RATE STORM_FAULT_DEADLINE_SECONDS STORM_TOKEN_LIMIT \
    STORM_TOKEN_FACTOR STORM_TOKEN_SECONDS STORM_TOKEN_DEADLINE_SECONDS STORM_MODELS_A_RATE \
    STORM_MODELS_B_RATE STORM_MODELS_SECONDS; do
    if [ -n "${!knob:-}" ]; then
        full=no
    fi
done
if [ "$#" -gt 0 ] || [ "${STORM_RATE:-}" != 50 ] || [ "${STORM_ADAPTIVE_RATE}" != 40 ] ||
    [ "${STORM_ADAPTIVE_BURST}" != 5 ] || [ "${STORM_SHED_PERCENT}" != 30 ]; then
    full=no
fi
if [ "$full" = yes ]; then
    mkdir -p docs
    cp "$out_dir"/storm-*.svg docs/
    echo "storm.sh: full run: plots copied to docs/" >&2
else
    echo "storm.sh: not a full run: plots left in $out_dir" >&2
fi
