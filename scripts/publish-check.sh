#!/usr/bin/env bash
# Is the crate ready to publish? Three checks, each failing loudly:
#
#   1. docs.rs: the docs build as docs.rs builds them — every feature, `--cfg docsrs` (the
#      feature badges on items come from `#![cfg_attr(docsrs, feature(doc_cfg))]`), warnings
#      are errors. docs.rs uses a nightly rustdoc; here the stable one is run with
#      RUSTC_BOOTSTRAP=1 (for rustdoc only, through a wrapper, so the dependencies' build
#      cache stays the one the tests use).
#   2. rust-version: the declared `rust-version` must cover every normal dependency the
#      default features pull in, as locked (each crate's own declared rust-version, read from
#      `cargo metadata`); the features whose graph needs more are listed. Our own code is
#      held to it by clippy's `incompatible_msrv` lint in `.ci/run`.
#   3. cargo package: the packaged crate (what crates.io would get) builds (cargo's own
#      verification), and its unit tests and doctests (default features; the whole suite runs
#      on the checkout) pass from the unpacked package.
#
#   scripts/publish-check.sh            all three
#   scripts/publish-check.sh docs|msrv|package
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
what=${1:-all}

docs() {
    echo "publish-check: docs.rs build (--cfg docsrs, all features, -D warnings)"
    local wrapper
    wrapper=$(mktemp)
    printf '#!/bin/sh\nRUSTC_BOOTSTRAP=1 exec rustdoc "$@"\n' >"$wrapper"
    chmod +x "$wrapper"
    RUSTDOC="$wrapper" RUSTDOCFLAGS="--cfg docsrs -D warnings" \
        cargo doc --locked --no-deps --all-features
    rm -f "$wrapper"
    # The badges are there: an item behind a feature says so.
    grep -q 'Available on crate feature' "$target/doc/tower_reliability/index.html" ||
        { echo "publish-check: no feature badges in the docs" >&2; exit 1; }
}

msrv() {
    echo "publish-check: rust-version against the locked dependency graph"
    python3 - <<'PY'
import json, re, subprocess, sys

def version(v):
    parts = [int(x) for x in re.findall(r"\d+", v)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"]))
declared = next(p["rust_version"] for p in meta["packages"]
                if p["id"] in meta["workspace_members"])
by_id = {(p["name"], p["version"]): p.get("rust_version") for p in meta["packages"]}

def needs(features):
    args = ["cargo", "tree", "--locked", "-e", "normal", "--target", "x86_64-unknown-linux-gnu",
            "--prefix", "none", "--no-dedupe", "-f", "{p}"] + features
    out = subprocess.check_output(args, text=True)
    worst = ("0", "-")
    for line in set(out.splitlines()):
        fields = line.split()
        if len(fields) < 2:
            continue
        need = by_id.get((fields[0], fields[1].lstrip("v")))
        if need and version(need) > version(worst[0]):
            worst = (need, f"{fields[0]} {fields[1]}")
    return worst

failed = False
for name, features in [("default", []), ("no default", ["--no-default-features"]),
                       ("rustls", ["--features", "rustls"]), ("axum", ["--features", "axum"]),
                       ("metrics", ["--features", "metrics"]), ("http2", ["--features", "http2"]),
                       ("reqwest-middleware", ["--features", "reqwest-middleware"]),
                       ("redis", ["--features", "redis"]), ("testing", ["--features", "testing"])]:
    need, who = needs(features)
    ok = version(need) <= version(declared)
    print(f"  {name:20} needs {need:6} ({who})" + ("" if ok else f"  > rust-version {declared}"))
    # The default features must build on the declared version; optional integrations that
    # need more are documented in the README's feature table.
    if not ok and name in ("default", "no default"):
        failed = True
sys.exit(1 if failed else 0)
PY
}

package() {
    echo "publish-check: cargo package (the packaged crate builds), then its tests"
    cargo package --locked --allow-dirty
    local unpacked
    unpacked=$(ls -d "$target"/package/tower-reliability-*/ | grep -v tmp | head -1)
    # A target dir of its own: cargo hashes a root package by name and version, not path, so
    # sharing the main one would mix the two copies' build state.
    local packaged="$target/packaged"
    (cd "$unpacked" && CARGO_TARGET_DIR="$packaged" cargo test --locked --lib)
    (cd "$unpacked" && CARGO_TARGET_DIR="$packaged" cargo test --locked --doc)
}

case "$what" in
all) docs; msrv; package ;;
docs) docs ;;
msrv) msrv ;;
package) package ;;
*) echo "usage: $0 [all|docs|msrv|package]" >&2; exit 2 ;;
esac
