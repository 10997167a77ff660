#!/usr/bin/env python3
"""ARCHITECTURE.md stays a map: at most 300 lines, and every path it names exists.

A path is a backticked token with a `/` in it (`engine/src/root/mod.rs`, `src/gateway/`)
or a file name with an extension. It is tried against the workspace root and each
top-level crate (`engine/`, `sim/`, `scenarios/`, `reports/`: the code map names `src/...`
under its crate's heading), and against the folders named earlier in the same bullet
(`src/gateway/` ... `server.rs`). `../shared/...` is outside the repo and `<placeholders>`
are not paths.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "ARCHITECTURE.md"
LINES_MAX = 300
BASES = [ROOT] + [ROOT / c for c in ("engine", "sim", "scenarios", "reports")]

text = MAP.read_text()
problems = []
lines = text.count("\n")
if lines > LINES_MAX:
    problems.append(f"ARCHITECTURE.md has {lines} lines; at most {LINES_MAX}")
in_fence = False
context = []  # folders named earlier in the current bullet, resolved
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("```"):
        in_fence = not in_fence
        continue
    if in_fence:
        continue
    if not line.startswith(" "):
        context = []
    for token in re.findall(r"`([^`\s]+)`", line):
        looks_like_path = "/" in token or re.search(r"\.(rs|py|sh|toml|json|md|yml)$", token)
        if not looks_like_path or token.startswith("../") or "::" in token or "(" in token:
            continue
        if "<" in token:
            continue
        found = [b / token for b in BASES + context if (b / token).exists()]
        if not found:
            problems.append(f"line {n}: `{token}` does not exist")
        elif token.endswith("/"):
            context.append(found[0])
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"ARCHITECTURE.md: {lines} lines, every path it names exists")
