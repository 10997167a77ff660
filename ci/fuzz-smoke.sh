#!/usr/bin/env bash
# Fuzz smoke job: builds every cargo-fuzz target on the stable toolchain (libFuzzer
# without a sanitizer, debug assertions on) and runs each for FUZZ_SECONDS (default 15)
# from the committed seeds. A crash fails the job; libFuzzer leaves the input under
# fuzz/artifacts/<target>/ and prints the command that replays it. Installs cargo-fuzz
# when it is missing.
#
#   FUZZ_SECONDS=60 bash ci/fuzz-smoke.sh            every target, one minute each
#   FUZZ_TARGETS="simulation" bash ci/fuzz-smoke.sh  only some targets
#   FUZZ_SEED=0 bash ci/fuzz-smoke.sh                libFuzzer picks its own seed (default: 1, so
#                                                    a smoke run explores the same way each time)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-15}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

# cargo-fuzz replaces build.rustflags from .cargo/config.toml with its own RUSTFLAGS;
# it appends an existing RUSTFLAGS, so the simulator's cfg goes here.
export RUSTFLAGS="--cfg tokio_unstable"
flags=(--sanitizer none --debug-assertions)
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"

echo "== cargo fuzz build (stable, --sanitizer none)"
cargo fuzz build "${flags[@]}"

for target in $targets; do
    echo "== fuzz $target for ${seconds}s"
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    # corpus/<target> (ignored by git) collects new inputs; seeds/<target> is read only.
    if ! cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "FAIL fuzz target $target found a crash (input saved under fuzz/artifacts/$target/)"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || echo 'cov: ?')"
    echo "ok $target: $runs runs, $rate exec/s, $cov"
    rm -f "$log"
done
