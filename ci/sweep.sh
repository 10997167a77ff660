#!/usr/bin/env bash
# The main job (README): a sweep of every scenario over a fixed seed range, writing one
# record per run to results/sweep.json, then the release readiness report (Markdown,
# HTML, JSON, JUnit XML) to results/report/. Exit status 1 if any run failed or any
# scenario was inert; the report is written either way.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-100}
cargo build --release --locked -p scenarios --bin chaos
status=0
target/release/chaos sweep --seeds "$SEEDS" -o results/sweep.json "$@" || status=$?
target/release/chaos report results/sweep.json --out results/report
exit "$status"
