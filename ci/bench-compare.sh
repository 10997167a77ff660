#!/usr/bin/env bash
# W1 and W2 on our substrate beside madsim and turmoil, and W2 beside the bare
# paused-tokio floor (the peers' floor_tokio_w2, and the same floor built into our
# benchmark, `workloads floor`), built from the peers' sources
# in ../shared/bench/peers (targets under $PEERS_TARGET, default /tmp/peers-target),
# run alternately ROUNDS times. Prints the RESULT lines; compare medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where cargo puts its builds (CARGO_TARGET_DIR when set, as on a shared machine).
TARGET=${CARGO_TARGET_DIR:-target}
PEERS=${PEERS:-../shared/bench/peers}
OUT=${PEERS_TARGET:-/tmp/peers-target}
ROUNDS=${ROUNDS:-5}
[[ -d "$PEERS" ]] || { echo "no peer benchmarks at $PEERS" >&2; exit 2; }
cargo bench -p sim --bench workloads --no-run --locked
OURS=$(ls -t "$TARGET"/release/deps/workloads-* | grep -v '\.d$' | head -1)
(cd "$PEERS/madsim-bench" && RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR="$OUT/madsim" \
   cargo build --release -q --bin w1_madsim --bin w2_madsim)
(cd "$PEERS/turmoil-bench" && CARGO_TARGET_DIR="$OUT/std" \
   cargo build --release -q --bin w1_turmoil --bin w2_turmoil)
(cd "$PEERS/floor-bench" && CARGO_TARGET_DIR="$OUT/std" \
   cargo build --release -q --bin floor_tokio_w2)
for i in $(seq "$ROUNDS"); do
  "$OURS" w1
  "$OUT/madsim/release/w1_madsim"
  "$OUT/std/release/w1_turmoil"
  "$OURS" w2
  "$OUT/madsim/release/w2_madsim"
  "$OUT/std/release/w2_turmoil" --tick-us 100000
  "$OUT/std/release/floor_tokio_w2"
  "$OURS" floor
done
