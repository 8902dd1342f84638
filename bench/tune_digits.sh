#!/usr/bin/env bash
# The issue's tune must-show: `modelsmith tune` on the bundled digits over optimizer
# {sgd, adam, rmsprop}, log lr, batch size, momentum (sgd only) and decay, with ASHA —
# the default search (examples/tune-digits.toml). Prints wall time, the best validation
# accuracy and the final model's test accuracy. A fresh study each run.
# Usage: bench/tune_digits.sh [TRIALS=30] [JOBS=1] [SEED=0]
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-30}
jobs=${2:-1}
seed=${3:-0}
cargo build --release --quiet
bin=target/release/modelsmith
db=$(mktemp -d)/tune.db
start=$(date +%s.%N)
$bin tune --storage "sqlite:$db" --study "bench-digits" --trials "$trials" --jobs "$jobs" \
    --seed "$seed" --out "$(dirname "$db")/best" --json > "$db.json"
end=$(date +%s.%N)
python3 - "$db.json" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
b, f = r["best"], r["final_model"]
print(f"tune digits: {r['trials']} trials ({r['complete']} complete, {r['pruned']} pruned, {r['failed']} failed) "
      f"in {wall:.0f} s wall; best val_accuracy {b['value']:.4f} (trial {b['number']}: {b['params']}); "
      f"final model test_accuracy {f['test_accuracy']:.4f} after {f['epochs']} epochs ({f['train_seconds']:.0f} s)")
PY
