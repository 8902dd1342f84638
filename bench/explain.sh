#!/usr/bin/env bash
# The figures behind `modelsmith explain` (BENCHMARKS.md "Explanations"), in one run:
#  1. agreement with TensorFlow: the fixture test's max differences (saliency, IG; 100 digits);
#  2. IG completeness and deletion/insertion faithfulness on 500 test digits and 500
#     Fashion-MNIST test images (seed CNN trained here: digits with defaults, Fashion 5 epochs);
#  3. permutation importance beside scikit-learn's on a 2-of-8-columns table, both tasks;
#  4. IG speed (50 steps; 1 image and a batch of 64) beside TensorFlow's GradientTape on the
#     same seed CNN, alternating rounds, each the best of 5.
#
# Run: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install tensorflow-cpu onnxruntime scikit-learn
#      apt-get install -y dataset-fashion-mnist
#      bench/explain.sh [ROUNDS=3]          (MODELS=DIR keeps the trained models between runs)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/tmp/peer/bin/python}
ROUNDS=${1:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q
cargo build --release -q -p modelsmith --example explain_speed
BIN=target/release/modelsmith
echo "## machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "## 1. agreement with TensorFlow (float64 GradientTape), 100 test digits"
cargo test --release -q -p modelsmith --test explain_tf -- --nocapture 2>&1 | grep -F "of the attribution scale"

echo "## 2. completeness and faithfulness, 500 test images each"
cat > "$WORK/summary.py" <<'PY'
import json, sys
d = json.load(sys.stdin)["data"]
c, f = d["completeness"], d["faithfulness"]
print("  IG %d steps: completeness error mean %.2f%%, max %.2f%%, %.1f%% within 1%% (%d refined, up to %d steps)"
      % (d["steps"], 100 * c["mean_relative_error"], 100 * c["max_relative_error"],
         100 * c["within_one_percent"], c["refined"], c["max_steps"]))
print("  deletion AUC %.3f vs random %.3f: IG lower for %.1f%% of images; insertion AUC %.3f vs random %.3f"
      % (f["mean_deletion_auc"], f["mean_random_deletion_auc"], 100 * f["deletion_beats_random"],
         f["mean_insertion_auc"], f["mean_random_insertion_auc"]))
PY
# MODELS=DIR keeps the trained models there between runs.
MODELS=${MODELS:-$WORK}
[ -f "$MODELS/digits/model.json" ] || $BIN train --out "$MODELS/digits" > /dev/null 2>&1
[ -f "$MODELS/fashion/model.json" ] || $BIN train --data fashion-mnist --epochs 5 --out "$MODELS/fashion" > /dev/null 2>&1
for m in digits fashion; do
  acc=$(python3 -c "import json; print(round(json.load(open('$MODELS/$m/model.json'))['metrics'].get('test_accuracy'), 4))")
  echo "$m (test accuracy $acc):"
  $BIN explain --model "$MODELS/$m" --limit 500 --json 2> /dev/null | python3 "$WORK/summary.py"
done

echo "## 3. permutation importance beside scikit-learn"
"$PY" bench/explain_permutation.py classification "$BIN"
"$PY" bench/explain_permutation.py regression "$BIN"

echo "## 4. IG speed, 50 steps, seed CNN (seconds, best of 5 per round)"
for r in $(seq "$ROUNDS"); do
  ours=$(target/release/examples/explain_speed "$MODELS/digits" 5)
  tf=$("$PY" bench/tf_explain.py speed "$MODELS/digits" 5 2> /dev/null)
  python3 -c "
import json
o, t = json.loads('$ours'), json.loads('$tf')
print(f'round $r: 1 image ours {o[\"ig_1_seconds\"]*1e3:.1f} ms, TensorFlow {t[\"ig_1_seconds\"]*1e3:.1f} ms ({t[\"ig_1_seconds\"]/o[\"ig_1_seconds\"]:.2f}x); '
      f'64 images ours {o[\"ig_64_seconds\"]*1e3:.0f} ms, TensorFlow {t[\"ig_64_seconds\"]*1e3:.0f} ms ({t[\"ig_64_seconds\"]/o[\"ig_64_seconds\"]:.2f}x)')"
done
