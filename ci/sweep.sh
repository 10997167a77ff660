#!/usr/bin/env bash
# The main job (README): a sweep of every scenario over a fixed seed range, writing one
# record per run to results/sweep.json and a summary to stdout. Exit status 1 if any
# run failed or any scenario was inert.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-100}
cargo build --release --locked -p scenarios --bin chaos
exec target/release/chaos sweep --seeds "$SEEDS" --json results/sweep.json "$@"
