#!/usr/bin/env bash
# The HTML report in a real browser: opens REPORT_DIR/readiness.html in headless Chromium
# (Debian's package, installed here when missing) and checks what a reader sees against
# readiness.json; see ci/html-check.py. Uses the real-client venv (Python websockets, to
# speak the DevTools protocol).
#
#   bash ci/html-check.sh results/gate-report
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
