#!/usr/bin/env bash
# Regenerates the fixture crates/modelsmith/tests/explain_tf.rs checks attributions against:
# a small CNN trained on the bundled digits (its model folder), and TensorFlow's saliency and
# Integrated Gradients for its first 100 test digits (bench/tf_explain.py).
#
# Run: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install tensorflow-cpu
#      bench/explain_fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/tmp/peer/bin/python}
OUT=crates/modelsmith/tests/fixtures/explain-cnn
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q
./target/release/modelsmith train --model bench/explain-cnn.toml --epochs 3 --seed 1 --out "$WORK/model"
mkdir -p "$OUT"
cp "$WORK/model/model.json" "$WORK/model/weights.safetensors" "$OUT/"
"$PY" bench/tf_explain.py fixture "$OUT" "$OUT/tensorflow_attributions.safetensors" 100
