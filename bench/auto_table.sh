#!/usr/bin/env bash
# `modelsmith auto` on real tabular data (scikit-learn's bundled breast-cancer and wine sets,
# written to CSV) against two baselines: our own default MLP (`modelsmith train --model mlp`,
# the same loader and so the same 80/20 split) and scikit-learn's logistic regression
# (standardized, mean over 20 random 80/20 splits: not the same split, so a range).
# Needs python3 with scikit-learn (PY=/tmp/peer/bin/python by default).
# Usage: bench/auto_table.sh [BUDGET=60s] [SEEDS="0 1 2"]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-60s}
seeds=${2:-0 1 2}
. bench/peer.sh
py=${PY:-$(peer_python scikit-learn)}
cargo build --release --quiet -p modelsmith-cli
bin=${CARGO_TARGET_DIR:-target}/release/modelsmith
work=$(mktemp -d)
$py - "$work" <<'PY'
import sys, numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
work = sys.argv[1]
for name, loader in [("breast_cancer", load_breast_cancer), ("wine", load_wine)]:
    d = loader()
    cols = [f"f{i}" for i in range(d.data.shape[1])]
    with open(f"{work}/{name}.csv", "w") as f:
        f.write(",".join(cols + ["label"]) + "\n")
        for row, y in zip(d.data, d.target):
            f.write(",".join(f"{v:.6g}" for v in row) + f",c{y}\n")
    accs = []
    for s in range(20):
        xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.2, random_state=s, stratify=d.target)
        m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(xtr, ytr)
        accs.append(m.score(xte, yte))
    print(f"{name}: {d.data.shape[0]} rows, {d.data.shape[1]} features; sklearn logistic regression test "
          f"accuracy mean {np.mean(accs):.4f} (min {np.min(accs):.4f}, max {np.max(accs):.4f}) over 20 splits")
PY
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in breast_cancer wine; do
    for seed in $seeds; do
        $bin auto --data "csv:$work/$name.csv" --target label --time-budget "$budget" --seed "$seed" \
            --storage memory: --out "$work/auto-$name-$seed" --json -q > "$work/auto-$name-$seed.json"
        $bin train --data "csv:$work/$name.csv" --target label --model mlp --seed "$seed" \
            --out "$work/mlp-$name-$seed" --json > "$work/mlp-$name-$seed.json" 2>/dev/null
        python3 - "$work" "$name" "$seed" <<'PY'
import json, sys
w, n, s = sys.argv[1:]
a = json.load(open(f"{w}/auto-{n}-{s}.json")); m = json.load(open(f"{w}/mlp-{n}-{s}.json"))
f = a["final_model"]
print(f"{n} seed {s}: auto test {f['test_accuracy']:.4f} ({a['trials']} trials, {a['total_seconds']:.0f} s, "
      f"{f['params']} params: {f['architecture']}); train --model mlp test {m['test_accuracy']:.4f} "
      f"({m['epochs_run']} epochs, {m['train_seconds']:.1f} s)")
PY
    done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
