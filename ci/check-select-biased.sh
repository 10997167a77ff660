#!/usr/bin/env bash
# Every tokio::select! in our code must start with `biased;` so branch order is fixed
# (BRIEF §3 rule 3). Prints each offender; exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import pathlib, re, sys
bad = []
for path in sorted(pathlib.Path('.').glob('*/src/**/*.rs')) + sorted(pathlib.Path('.').glob('*/tests/**/*.rs')):
    if 'target' in path.parts:
        continue
    text = path.read_text()
    for m in re.finditer(r'select!\s*\{', text):
        rest = text[m.end():].lstrip()
        if not rest.startswith('biased;'):
            line = text.count('\n', 0, m.start()) + 1
            bad.append(f'{path}:{line}: select! without `biased;`')
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
