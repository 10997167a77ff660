#!/usr/bin/env bash
# Peak memory of one run (issue 20: at most 64 MiB for every catalog scenario and the
# VOPR): the process's max RSS of `chaos run ID --seed N`, from /usr/bin/time, for every
# implemented catalog scenario, vopr.engine and the simulator's self-checks, over a few
# seeds. One run per process, so each figure is that run's own peak (the binary's own
# floor, about 11 MB, included).
#   ci/peak-memory.sh                  seeds 1..3, every scenario
#   SEEDS="1 2 3 4 5" ci/peak-memory.sh
#   PREFIX=core.EC-05 ci/peak-memory.sh
#   CHAOS=/tmp/chaos-before NO_BUILD=1 OUT=before.tsv ci/peak-memory.sh   (another build)
# Prints one line per scenario (its largest run), the largest last; writes every run to
# $OUT (default target/peak-memory.tsv: id, seed, max RSS in KiB as /usr/bin/time's %M
# gives it, exit status).
# Exits 1 when a run peaks above LIMIT_KB (default 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1 2 3"}
PREFIX=${PREFIX:-}
LIMIT_KB=${LIMIT_KB:-65536}
OUT=${OUT:-target/peak-memory.tsv}
CHAOS=${CHAOS:-target/release/chaos}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --locked -p scenarios --bin chaos

ids_of() { python3 -c 'import json,sys; print("\n".join(e["id"] for e in json.load(sys.stdin)))'; }
ids=$( { "$CHAOS" list --status implemented --json | ids_of; echo vopr.engine
         "$CHAOS" list --substrate --json | ids_of; } | grep "^${PREFIX}" || true)
[ -n "$ids" ] || { echo "no scenario matches prefix '${PREFIX}'" >&2; exit 2; }

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
rss=$(mktemp)
trap 'rm -f "$rss"' EXIT
for id in $ids; do
  for seed in $SEEDS; do
    # A failing verdict is the sweep's business, not this script's: record its status.
    /usr/bin/time -q -f '%M' -o "$rss" "$CHAOS" run "$id" --seed "$seed" >/dev/null 2>&1 \
      && status=0 || status=$?
    printf '%s\t%s\t%s\t%s\n' "$id" "$seed" "$(tail -1 "$rss")" "$status" >>"$OUT"
  done
done

python3 - "$OUT" "$LIMIT_KB" <<'EOF'
import sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().splitlines() if l]
limit = int(sys.argv[2])
worst = {}
for id_, seed, kb, status in rows:
    kb = int(kb) if kb.isdigit() else 0
    if id_ not in worst or kb > worst[id_][1]:
        worst[id_] = (seed, kb, status)
for id_, (seed, kb, status) in sorted(worst.items(), key=lambda x: x[1][1]):
    note = '' if status == '0' else f'  (exit {status})'
    print(f'{kb / 1024:8.1f} MiB  {id_} seed {seed}{note}')
id_, (seed, kb, _) = max(worst.items(), key=lambda x: x[1][1])
print(f'largest: {id_} seed {seed}: {kb / 1024:.1f} MiB ({kb} KiB max RSS), '
      f'{len(rows)} runs of {len(worst)} scenarios; limit {limit / 1024:.0f} MiB')
over = [r for r in rows if r[2].isdigit() and int(r[2]) > limit]
if over:
    print(f'{len(over)} runs above the limit', file=sys.stderr)
    sys.exit(1)
EOF
