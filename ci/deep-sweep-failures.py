#!/usr/bin/env python3
"""Prints a GitHub `::error` annotation and a `repro:` line for every failed run in the
given sweep files (the deep sweep's shards); exits 1 if there was any, 2 on unreadable
input. Inert scenarios are reported the same way (a scenario whose faults never fired
tested nothing)."""
import json
import sys


def records(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(f"::error title=deep sweep::cannot read {path}: {e}")
        sys.exit(2)
    return data["records"] if isinstance(data, dict) else data


def main(paths):
    if not paths:
        print("usage: deep-sweep-failures.py SWEEP.json...", file=sys.stderr)
        return 2
    failed, fired, runs = 0, {}, {}
    for path in paths:
        for r in records(path):
            runs[r["id"]] = runs.get(r["id"], 0) + 1
            fired[r["id"]] = fired.get(r["id"], False) or r.get("faults_expected_fired", True)
            if r["verdict"] == "pass":
                continue
            failed += 1
            message = (r.get("message") or "").splitlines()[0] if r.get("message") else ""
            print(f"::error title={r['id']} seed {r['seed']}::{message}")
            print(f"repro: {r['repro']}")
    inert = sorted(i for i, f in fired.items() if not f)
    for scenario in inert:
        print(f"::error title={scenario} inert::none of its fault kinds fired in {runs[scenario]} runs")
    total = sum(runs.values())
    print(f"deep sweep: {total} runs of {len(runs)} scenarios, {failed} failed, {len(inert)} inert")
    return 1 if failed or inert else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
