#!/usr/bin/env bash
# The regression gate (README): the fixed sweep of ci/gate-baseline.json (every scenario
# over its seed range) judged against the baseline's expected statuses, plus the
# determinism re-runs; then the readiness report of that sweep in results/gate-report/.
# A red gate prints one `repro:` line per failure (and `::error` annotations on GitHub
# Actions). Accepting a new baseline is explicit: `target/release/chaos gate --accept`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p scenarios --bin chaos
status=0
target/release/chaos gate -o results/gate.json "$@" || status=$?
if [ -f results/gate.json ]; then
  target/release/chaos report results/gate.json --out results/gate-report
fi
exit "$status"
