#!/usr/bin/env bash
# The real-client checks: `engine serve` (real loopback TCP, real worker processes) driven
# by Python's `websockets` package, a WebSocket client nobody on this project wrote (see
# ci/real-client/test_channel.py), and `engine upstream` (the local model API) called by
# the official `anthropic` Python SDK (see ci/real-client/test_model_api.py). Needs python3 with venv; the
# venv lives in the target directory and is reused while its pin matches.
#
#   bash ci/real-client.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
target="${CARGO_TARGET_DIR:-target}"
venv="$target/real-client-venv"
websockets_version="15.0.1"
anthropic_version="2.10.0"

if ! "$venv/bin/python" -c "import sys, websockets, anthropic; sys.exit(websockets.__version__ != '$websockets_version' or anthropic.__version__ != '$anthropic_version')" 2>/dev/null; then
    echo "== python venv $venv with websockets==$websockets_version anthropic==$anthropic_version"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "websockets==$websockets_version" "anthropic==$anthropic_version"
fi

echo "== cargo build: engine and worker binaries"
cargo build --locked -p engine --bin engine --bin worker

echo "== real client: websockets against engine serve"
"$venv/bin/python" ci/real-client/test_channel.py --engine "$target/debug/engine" --worker "$target/debug/worker"

echo "== SDK check: the anthropic SDK against engine upstream"
"$venv/bin/python" ci/real-client/test_model_api.py --engine "$target/debug/engine" --worker "$target/debug/worker"
