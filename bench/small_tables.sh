#!/usr/bin/env bash
# `modelsmith auto --time-budget BUDGET` on scikit-learn's bundled classification tables (iris,
# wine, breast cancer, digits: 150 to 1,797 rows) against scikit-learn's defaults: logistic
# regression (standardized), random forest and HistGradientBoosting. One fixed stratified 75/25
# split per table (random_state 0), written to CSV; every model trains on the same train rows and
# is scored on all the test rows (`--test-data`), in the same run on the same machine.
# Usage: [BIN=...] [WORK=DIR] bench/small_tables.sh [BUDGET=1m] [SEED=0]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-1m}
seed=${2:-0}
. bench/peer.sh
py=${PY:-$(peer_python scikit-learn)}
# BIN=path/to/modelsmith runs another build (an older commit, for a before/after).
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet -p modelsmith-cli
fi
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release/modelsmith}
work=${WORK:-$(mktemp -d)}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" - "$work" <<'PY'
import json, sys
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
work = sys.argv[1]
for name, loader in [("iris", load_iris), ("wine", load_wine),
                     ("breast_cancer", load_breast_cancer), ("digits", load_digits)]:
    d = loader()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    cols = [f"f{i}" for i in range(d.data.shape[1])]
    for part, x, y in [("train", xtr, ytr), ("test", xte, yte)]:
        with open(f"{work}/{name}_{part}.csv", "w") as f:
            f.write(",".join(cols + ["label"]) + "\n")
            for row, label in zip(x, y):
                f.write(",".join(f"{v:.6g}" for v in row) + f",c{label}\n")
    scores = {}
    for model_name, model in [
        ("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))),
        ("random_forest", RandomForestClassifier(random_state=0)),
        ("hist_gradient_boosting", HistGradientBoostingClassifier(random_state=0)),
    ]:
        scores[model_name] = round(model.fit(xtr, ytr).score(xte, yte), 4)
    print(json.dumps({"table": name, "train": len(ytr), "test": len(yte), **scores}), flush=True)
PY
for name in iris wine breast_cancer digits; do
    "$bin" auto --data "csv:$work/${name}_train.csv" --target label \
        --test-data "csv:$work/${name}_test.csv" --time-budget "$budget" --seed "$seed" \
        --storage memory: --out "$work/auto-$name" --json -q > "$work/auto-$name.json"
    python3 - "$work/auto-$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["final_model"]
# Builds before the task concept report `test_accuracy` (a before/after with BIN=).
accuracy = f["test"]["accuracy"] if "test" in f else f["test_accuracy"]
print(json.dumps({"table": sys.argv[2], "modelsmith_auto": round(accuracy, 4),
                  "trials": r["trials"], "complete": r["complete"], "architecture": f["architecture"],
                  "total_seconds": round(r["total_seconds"], 1)}), flush=True)
PY
done
echo "work folder: $work"
