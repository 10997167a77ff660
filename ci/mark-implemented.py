#!/usr/bin/env python3
"""Marks catalog entries `implemented` when a scenario with their id exists.

Reads every `id: "..."` of a catalog scenario under scenarios/src (the `sim.*`
self-checks are not catalog entries) and rewrites the matching entries' status in
scenarios/catalog.toml. The registry test `registry_and_catalog_agree` checks the
result both ways.
"""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
ids = set()
for path in (root / "scenarios" / "src").rglob("*.rs"):
    text = path.read_text()
    # Scenarios written out as structs, and those declared with the `scenario!` macro.
    found = re.findall(r'^\s*id: "([^"]+)",', text, re.M)
    found += re.findall(r'scenario!\(\s*\w+,\s*"([^"]+)",', text)
    for scenario_id in found:
        if not scenario_id.startswith("sim."):
            ids.add(scenario_id)
catalog = root / "scenarios" / "catalog.toml"
text = catalog.read_text()
out, current, changed = [], None, 0
for line in text.splitlines(keepends=True):
    m = re.match(r'^id = "([^"]+)"', line)
    if m:
        current = m.group(1)
    if line.startswith('status = "planned"') and current in ids:
        line = 'status = "implemented"\n'
        changed += 1
    out.append(line)
catalog.write_text("".join(out))
print(f"{len(ids)} scenario ids; {changed} entries newly marked implemented")
