#!/usr/bin/env bash
# The main job (README): a sweep of every scenario over a fixed seed range, writing one
# record per run to results/sweep.json, then the release readiness report (Markdown,
# HTML, JSON, JUnit XML) to results/report/. The exit status follows the REGRESSION
# verdict: 1 if any run failed or any scenario was inert (the sweep's own judgement,
# the same rules as the report's regression verdict); the report is written either way.
# The coverage verdict (planned entries under ci/readiness-policy.toml) is in the
# report; `chaos report --require-ready` follows both verdicts.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-100}
cargo build --release --locked -p scenarios --bin chaos
status=0
target/release/chaos sweep --seeds "$SEEDS" -o results/sweep.json "$@" || status=$?
target/release/chaos report results/sweep.json --out results/report
case "$status" in
  0) echo "sweep.sh: exit 0: follows the regression verdict (pass); coverage is reported above, not judged here" ;;
  1) echo "sweep.sh: exit 1: follows the regression verdict (FAIL: a run failed or a scenario was inert)" ;;
  *) echo "sweep.sh: exit $status: the sweep did not run (see its error above)" ;;
esac
exit "$status"
