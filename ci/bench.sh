#!/usr/bin/env bash
# The performance figures in one command (README "Performance"):
#   W1, W2 and the bare paused-tokio W2 floor (medians, ratio ours/floor) from the
#   `workloads` benchmark; a fixed gate-like sweep (runs per CPU second = runs/s/core);
#   VOPR runs (simulated seconds per CPU second); peak memory of one run of every
#   catalog and substrate scenario (the largest printed) and of the VOPR.
# CPU seconds (user + system, from /usr/bin/time) rather than wall seconds, so a shared
# machine skews the figures less; compare before/after on the same machine.
# Env: ROUNDS (W1/W2/floor rounds, 5), SEEDS (sweep seeds per scenario, 5),
#      VOPR_SEEDS (5), MEMORY=0 skips the per-scenario memory pass.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where cargo puts its builds (CARGO_TARGET_DIR when set, as on a shared machine).
TARGET=${CARGO_TARGET_DIR:-target}
ROUNDS=${ROUNDS:-5}
SEEDS=${SEEDS:-5}
VOPR_SEEDS=${VOPR_SEEDS:-5}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
cargo build --release -q --locked -p scenarios --bin chaos
cargo bench -q -p sim --bench workloads --no-run --locked 2>/dev/null
WORKLOADS=$(ls -t "$TARGET"/release/deps/workloads-* | grep -v '\.d$' | grep -v '\.rmeta$' | head -1)
CHAOS=$TARGET/release/chaos
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "== W1, W2, floor ($ROUNDS rounds, medians)"
"$WORKLOADS" all --rounds "$ROUNDS" | grep -E '^(SUMMARY|RESULT)'

echo "== gate-like sweep: every scenario x $SEEDS seeds, one job"
/usr/bin/time -f '%U %S %M' -o "$TMP/sweep.time" \
  "$CHAOS" sweep --seeds "$SEEDS" --jobs 1 -o "$TMP/sweep.json" >"$TMP/sweep.err" 2>&1 || true
runs=$(grep -oE 'sweep: [0-9]+ passed, [0-9]+ failed' "$TMP/sweep.err" | awk '{print $2 + $4}')
# A sweep with failing or inert scenarios exits non-zero: time's last line has the figures.
read -r user sys peak < <(tail -1 "$TMP/sweep.time")
awk -v r="$runs" -v u="$user" -v s="$sys" \
  'BEGIN { printf "SWEEP runs=%d cpu_s=%.2f runs_per_cpu_s=%.1f ms_cpu_per_run=%.2f\n", r, u + s, r / (u + s), 1000 * (u + s) / r }'
grep -E '^sweep:' "$TMP/sweep.err" || { echo "the sweep did not finish:" >&2; tail -5 "$TMP/sweep.err" >&2; exit 1; }

echo "== VOPR: vopr.engine seeds 1..$VOPR_SEEDS, one process each"
total_sim=0; total_cpu=0
for seed in $(seq "$VOPR_SEEDS"); do
  /usr/bin/time -f '%U %S %M' -o "$TMP/vopr.time" "$CHAOS" run vopr.engine --seed "$seed" >"$TMP/vopr.out" || true
  sim=$(grep -oE 'sim time: +[0-9.]+s' "$TMP/vopr.out" | grep -oE '[0-9.]+')
  read -r user sys peak < <(tail -1 "$TMP/vopr.time")
  echo "VOPR seed=$seed sim_s=$sim cpu_s=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}') peak_kib=$peak $(grep -oE 'verdict: +[A-Z]+' "$TMP/vopr.out" | tr -s ' ')"
  total_sim=$(awk -v a="$total_sim" -v b="$sim" 'BEGIN{print a+b}')
  total_cpu=$(awk -v a="$total_cpu" -v u="$user" -v s="$sys" 'BEGIN{print a+u+s}')
done
awk -v s="$total_sim" -v c="$total_cpu" 'BEGIN { printf "VOPR total sim_s=%.1f cpu_s=%.2f sim_s_per_cpu_s=%.0f (process start-up included)\n", s, c, s / c }'
echo "== VOPR benchmark: simulated seconds per wall second, one core, no process start-up"
cargo bench -q -p scenarios --bench vopr --locked -- --seeds "${VOPR_BENCH_SEEDS:-50}" 2>/dev/null | grep '^RESULT'

[[ "${MEMORY:-1}" == 0 ]] && exit 0
echo "== peak memory of one run (seed 1) of every scenario (ci/peak-memory.sh)"
NO_BUILD=1 SEEDS=1 OUT="$TMP/mem.tsv" bash ci/peak-memory.sh | tail -6 || true
