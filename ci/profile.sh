#!/usr/bin/env bash
# Where the time goes: CPU profiles of W2, W1, a gate-like sweep and a VOPR run.
# Installs what it needs (perf or valgrind through apt, inferno through cargo) instead
# of assuming it. Output in $OUT (default target/profile):
#   <name>.perf.txt   flat profile, self time per symbol (perf, cpu-clock sampling)
#   <name>.svg        flame graph (inferno)
#   <name>.cg.txt     instruction counts per function, inclusive (callgrind; with
#                     CALLGRIND=1, slow but repeatable on a loaded machine)
set -euo pipefail
cd "$(dirname "$0")/.."
# Where cargo puts its builds (CARGO_TARGET_DIR when set, as on a shared machine).
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-target/profile}
mkdir -p "$OUT"
need_apt() {
  command -v "$1" >/dev/null && return
  echo "installing $2 (apt)" >&2
  sudo -n true 2>/dev/null && SUDO=sudo || SUDO=
  $SUDO apt-get install -y -q "$2" >/dev/null
}
need_apt perf linux-tools-generic || true
need_apt valgrind valgrind
command -v inferno-flamegraph >/dev/null || cargo install -q --locked inferno
cargo build --release -q --locked -p scenarios --bin chaos
cargo bench -q -p sim --bench workloads --no-run --locked 2>/dev/null
WORKLOADS=$(ls -t "$TARGET"/release/deps/workloads-* | grep -v '\.d$' | grep -v '\.rmeta$' | head -1)
CHAOS=$TARGET/release/chaos
declare -A RUNS=(
  [w2]="$WORKLOADS w2"
  [w1]="$WORKLOADS w1"
  [sweep]="$CHAOS sweep --seeds 3 --jobs 1 -o $OUT/sweep.json"
  [vopr]="$CHAOS run vopr.engine --seed 1"
)
for name in w2 w1 sweep vopr; do
  cmd=${RUNS[$name]}
  # The command's own exit status does not matter here (a sweep with an inert scenario
  # exits 1); a profile that was written does.
  rm -f "$OUT/$name.perf"
  perf record -q -e cpu-clock -F 1999 -g -o "$OUT/$name.perf" -- $cmd >/dev/null 2>&1 || true
  if [[ -s "$OUT/$name.perf" ]]; then
    perf report -i "$OUT/$name.perf" --no-children --sort symbol --stdio -g none 2>/dev/null |
      grep '%' | head -60 >"$OUT/$name.perf.txt" || true
    perf script -i "$OUT/$name.perf" 2>/dev/null | inferno-collapse-perf >"$OUT/$name.folded"
    inferno-flamegraph --title "$name" <"$OUT/$name.folded" >"$OUT/$name.svg"
    echo "$name: $OUT/$name.perf.txt $OUT/$name.svg"
  else
    echo "$name: perf unavailable here (perf_event_paranoid?); use CALLGRIND=1" >&2
  fi
  if [[ "${CALLGRIND:-0}" == 1 ]]; then
    valgrind -q --tool=callgrind --callgrind-out-file="$OUT/$name.cg" $cmd >/dev/null 2>&1 || true
    callgrind_annotate --inclusive=yes "$OUT/$name.cg" 2>/dev/null | head -80 >"$OUT/$name.cg.txt" || true
    echo "$name: $OUT/$name.cg.txt"
  fi
done
