#!/usr/bin/env bash
# The test command (README): formatting, lints (the determinism rules live in
# clippy.toml), then every test of the workspace: unit tests of each simulated device,
# the conformance suite (simulated devices against real files, TCP and processes), the
# catalog and CLI tests, and the determinism double-run over every scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (determinism rules: clippy.toml)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tokio::select! must be biased (BRIEF §3 rule 3)"
bash ci/check-select-biased.sh

echo "== no islands: every engine module is reachable from Engine::start or the binaries"
python3 ci/check-no-islands.py

echo "== ARCHITECTURE.md: at most 300 lines, every path it names exists"
python3 ci/check-architecture.py

echo "== worker binary (the reality checks run it as a real child process)"
cargo build --locked -p engine --bin worker

echo "== cargo test"
# --lib --bins --tests: every test target (the bench is harness-less; no doc tests).
cargo test --workspace --locked --lib --bins --tests

echo "== real client (Python websockets against engine serve)"
bash ci/real-client.sh
