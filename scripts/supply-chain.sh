#!/usr/bin/env bash
# Supply-chain checks (issue 7, item 5): cargo-deny's advisories, licenses, bans and sources
# checks (configuration: deny.toml), run three times:
#   1. on the default dependency graph (what a user of the crate gets: default features, no
#      dev-dependencies): must pass without any ignored advisory being involved;
#   2. on the --all-features graph (no dev-dependencies): the same, except the two advisories
#      deny.toml ignores for the opt-in `backoff` feature (RUSTSEC-2025-0012 backoff,
#      RUSTSEC-2024-0384 instant);
#   3. on the --all-features graph with dev-dependencies (everything CI builds).
#
# Never fetches the advisory database: it reads the RustSec snapshot in ../shared/advisory-db
# (override with ADVISORY_DB=<dir>), copied into a temporary directory laid out the way
# cargo-deny expects (<db-path>/<name>-<hash of the db url>/, with .git/FETCH_HEAD dated to the
# snapshot so that cargo-deny's staleness check measures the snapshot's real age), and runs
# cargo-deny with --offline.
#
# Installs cargo-deny once per machine if it is missing (`cargo install --locked cargo-deny`,
# a few minutes); prints "SKIPPED: <why>" and exits 0 only when that install is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."

snapshot="${ADVISORY_DB:-../shared/advisory-db}"

if ! cargo deny --version >/dev/null 2>&1; then
    echo "== cargo-deny is not installed: cargo install --locked cargo-deny (once per machine)"
    if ! cargo install --locked cargo-deny; then
        echo "SKIPPED: cargo-deny is not installed and 'cargo install --locked cargo-deny' failed (no network to crates.io?)"
        exit 0
    fi
fi
echo "== $(cargo deny --version)"

if [[ ! -d "$snapshot/crates" ]]; then
    echo "error: no RustSec advisory-db snapshot at $snapshot (expected $snapshot/crates)" >&2
    exit 1
fi
# "RustSec advisory-db snapshot, commit <sha> (YYYY-MM-DD). ..."
snapshot_date="$(sed -n 's/.*(\([0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}\)).*/\1/p' "$snapshot/SNAPSHOT.txt" 2>/dev/null | head -n1)"
if [[ -z "$snapshot_date" ]]; then
    echo "error: cannot read the snapshot's date from $snapshot/SNAPSHOT.txt" >&2
    exit 1
fi
echo "== advisory db: $(sed -n "1s/)\..*/)/p" "$snapshot/SNAPSHOT.txt")"

# cargo-deny reads the manifest of every package in Cargo.lock, for every target (windows-sys
# included): make sure they are all in the local cache. Offline with a full cache, this is a no-op.
if ! cargo fetch --locked --quiet; then
    echo "warning: cargo fetch --locked failed; continuing with the local package cache" >&2
fi

work="$(mktemp -d)"
cleanup() {
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# deny.toml with db-path pointing into the temporary directory.
config="$work/deny.toml"
dbs="$work/advisory-dbs"
awk -v path="$dbs" '{ print } /^\[advisories\]/ { print "db-path = \"" path "\"" }' deny.toml >"$config"

# --frozen: --offline (nothing fetched) and --locked (Cargo.lock as committed).
deny() {
    cargo deny --frozen --color never --config "$config" "$@"
}

# Where does cargo-deny look for the database? (<db-path>/<last url segment>-<xxhash64 of the
# url>: ask it rather than re-implement the hash.) This run fails, on purpose, before checking.
db_dir="$(deny --log-level debug check advisories 2>&1 |
    sed -n "s/.*Opening advisory database at '\([^']*\)'.*/\1/p" | head -n1 || true)"
if [[ -z "$db_dir" || "$db_dir" != "$dbs"/* ]]; then
    echo "error: could not learn where cargo-deny expects the advisory database (got '$db_dir')" >&2
    exit 1
fi
mkdir -p "$db_dir"
cp -R "$snapshot"/. "$db_dir"/
chmod -R u+w "$db_dir"
mkdir -p "$db_dir/.git"
touch -d "$snapshot_date 00:00:00 UTC" "$db_dir/.git/FETCH_HEAD"

start_ms=$(($(date +%s%N) / 1000000))
echo "== 1/3 cargo deny --exclude-dev check (default features: the graph users get)"
deny --exclude-dev check advisories bans licenses sources
echo "== 2/3 cargo deny --exclude-dev --all-features check"
deny --exclude-dev --all-features check advisories bans licenses sources
echo "== 3/3 cargo deny --all-features check (with dev-dependencies)"
deny --all-features check advisories bans licenses sources
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
echo "== supply chain: OK in $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100)) s (checks only, installation excluded)"
