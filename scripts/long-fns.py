#!/usr/bin/env python3
"""Lists the functions in src/ longer than a limit (default 80 lines, signature to closing
brace), longest first: `scripts/long-fns.py [LIMIT]`. Counts by brace matching on lines with
strings, chars and comments blanked, so it needs no parser; `#[cfg(test)]` modules count too."""
import os, re, sys

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 80
FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')

def blank(line):
    line = re.sub(r'//.*', '', line)
    line = re.sub(r"b?'(\\.|[^\\'])'", "''", line)
    return re.sub(r'b?"(\\.|[^"\\])*"', '""', line)

found = []
for root, _, files in os.walk('src'):
    for name in files:
        if not name.endswith('.rs'):
            continue
        path = os.path.join(root, name)
        lines = open(path).read().split('\n')
        for i, line in enumerate(lines):
            m = FN.match(line)
            if not m:
                continue
            depth, opened = 0, False
            for j in range(i, len(lines)):
                text = blank(lines[j])
                if not opened and ';' in text and '{' not in text:
                    break  # a declaration without a body
                depth += text.count('{') - text.count('}')
                opened = opened or '{' in text
                if opened and depth <= 0:
                    if j - i + 1 > LIMIT:
                        found.append((j - i + 1, f'{path}:{i + 1}', m.group(6)))
                    break
for length, where, name in sorted(found, reverse=True):
    print(f'{length:4} {where} {name}')
print(f'{len(found)} functions longer than {LIMIT} lines')
