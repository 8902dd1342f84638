#!/usr/bin/env bash
# The issue's architecture-search must-show: `modelsmith auto --data fashion-mnist` with the
# same budget for the default strategy (hillclimb) and for random search (the control), one
# after the other on a quiet machine (2 cores: about an hour at the default 30m each). Prints
# for each: trials, the winning architecture, its params and latency, validation and test
# accuracy. Needs the Debian package dataset-fashion-mnist. Fresh studies each run.
# Usage: bench/auto_fashion.sh [BUDGET=30m] [SEED=0] [STRATEGIES="hillclimb random"]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-30m}
seed=${2:-0}
strategies=${3:-hillclimb random}
cargo build --release --quiet -p modelsmith-cli
bin=${CARGO_TARGET_DIR:-target}/release/modelsmith
work=$(mktemp -d)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  work: $work" >&2
for strategy in $strategies; do
    $bin auto --data fashion-mnist --time-budget "$budget" --strategy "$strategy" --seed "$seed" \
        --storage "sqlite:$work/auto.db" --study "fashion-$strategy-$seed" \
        --out "$work/model-$strategy" --json > "$work/$strategy.json" 2> "$work/$strategy.log"
    echo "load after $strategy: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
python3 - "$work" $strategies <<'PY'
import json, sys
work, strategies = sys.argv[1], sys.argv[2:]
for s in strategies:
    r = json.load(open(f"{work}/{s}.json"))
    f = r["final_model"]
    print(f"{s:>9}: {r['trials']} trials ({r['complete']} complete, {r['pruned']} pruned) in {r['total_seconds']:.0f} s; "
          f"best trial {f['trial']}: val {f['val_accuracy']:.4f}, test {f['test_accuracy']:.4f}, "
          f"{f['params']} params, {f['flops']} FLOPs, {f['latency_ms']:.3f} ms/example; "
          f"{f['architecture']}")
PY
