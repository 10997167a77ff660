#!/usr/bin/env bash
# The HTML report in a real browser: opens REPORT_DIR/readiness.html in headless Chromium
# (Debian's package, installed here when missing) and checks what a reader sees against
# readiness.json; see ci/html-check.py. Uses the real-client venv (Python websockets, to
# speak the DevTools protocol).
#
# With SWEEP.json as well, it also plants a failure: one run of that sweep rewritten as
# failing, reported with --previous REPORT_DIR into REPORT_DIR-planted, so the failing
# section and the trend ("newly failing") are checked in the browser too.
#
#   bash ci/html-check.sh results/gate-report [results/gate.json]
set -euo pipefail
cd "$(dirname "$0")/.."
report="${1:?usage: ci/html-check.sh REPORT_DIR}"
target="${CARGO_TARGET_DIR:-target}"
venv="$target/real-client-venv"

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium (headless browser for the HTML report check)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get install -y -q chromium >/dev/null 2>&1 || {
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q chromium >/dev/null
    }
fi
if ! "$venv/bin/python" -c "import websockets" 2>/dev/null; then
    echo "html-check: $venv lacks websockets: run ci/real-client.sh first" >&2
    exit 2
fi
"$venv/bin/python" ci/html-check.py "$report"

sweep="${2:-}"
if [ -n "$sweep" ]; then
    planted="$report-planted"
    mkdir -p "$planted"
    python3 - "$sweep" "$planted/planted-sweep.json" <<'PY'
import json, sys
sweep = json.load(open(sys.argv[1]))
run = next(r for r in sweep["records"] if not r["id"].startswith(("sim.", "vopr.")))
run.update(verdict="fail", failure_class="correctness", message="planted by ci/html-check.sh")
json.dump(sweep, open(sys.argv[2], "w"))
print(f"html-check: planted a failure: {run['id']} seed {run['seed']}")
PY
    status=0
    "${CHAOS:-$target/release/chaos}" report "$planted/planted-sweep.json" --previous "$report" \
        --out "$planted" --formats html,json >/dev/null || status=$?
    if [ "$status" != 0 ]; then echo "html-check: chaos report failed ($status)" >&2; exit 1; fi
    "$venv/bin/python" - "$planted/readiness.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
newly = [c["id"] for c in r["trend"]["newly_failing"]]
assert len(newly) == 1, f"the planted failure is not the one newly failing scenario: {newly}"
PY
    "$venv/bin/python" ci/html-check.py "$planted"
fi
