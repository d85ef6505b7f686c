#!/usr/bin/env bash
# Counts the public API as rustdoc sees it (the README's design notes quote these figures):
# the items on `all.html` (structs, enums, traits, functions, type aliases, constants, each
# once under its canonical path; modules and methods not counted) for the default features
# and for `--all-features`, and the names the crate root re-exports (`pub use` in src/lib.rs).
#
#   scripts/api-count.sh          the three figures
#   scripts/api-count.sh -v       and every item, by kind
set -euo pipefail
cd "$(dirname "$0")/.."
verbose=${1:-}

count() {
    python3 - "${CARGO_TARGET_DIR:-target}/doc/tower_reliability/all.html" "$1" "$verbose" <<'PY'
import re, sys
page, label, verbose = sys.argv[1], sys.argv[2], sys.argv[3]
html = open(page).read()
sections = re.findall(r'<h3 id="([a-z-]+)">.*?</h3><ul class="all-items">(.*?)</ul>', html, re.S)
total = 0
for kind, body in sections:
    items = [re.sub('<[^>]+>', '', i) for i in re.findall(r'<li><a href="[^"]*">(.*?)</a></li>', body)]
    total += len(items)
    if verbose:
        print(f"  {kind} ({len(items)}): {' '.join(items)}")
print(f"public items, {label}: {total}")
PY
}

# Links to feature-gated items do not resolve without the features: not this count's concern.
RUSTDOCFLAGS="-A rustdoc::broken_intra_doc_links" cargo doc --no-deps --quiet
count "default features"
cargo doc --no-deps --all-features --quiet
count "all features"

# Names in the crate root's `pub use` lines (a `{a, b}` group counts each name).
python3 - <<'PY'
import re
src = open("src/lib.rs").read()
names = []
for m in re.finditer(r'^pub use ([^;]+);', src, re.M):
    path = m.group(1)
    g = re.search(r'\{([^}]*)\}', path)
    names += [n.strip() for n in g.group(1).split(',') if n.strip()] if g else [path.rsplit('::', 1)[-1]]
print(f"root re-exports: {len(names)} ({', '.join(names)})")
PY
