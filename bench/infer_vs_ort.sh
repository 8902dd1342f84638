#!/usr/bin/env bash
# Inference speed of the engine (through Predictor, the path of `modelsmith predict` and the
# server) against onnxruntime on the ONNX export of the same model, same images, same machine.
#
#   [ROUNDS=3] [SECONDS_PER_BATCH=2] [THREADS=2] bench/infer_vs_ort.sh [MODEL_DIR]
#
# Without MODEL_DIR it trains the seed CNN on the bundled digits for one epoch. The model is
# exported with `modelsmith export --format onnx`; then, per round, the Rust example
# `infer_bench` and `bench/ort_infer.py` (onnxruntime from $PEER_PYTHON, default
# /tmp/peer/bin/python) each run batch 1 and batch 32, alternating (ours, ORT, ours, ORT) so
# machine noise hits both. The first round also checks that the two agree on 1,024 test digits.
# Prints one table and the ratio ours / onnxruntime of images/s per round.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_BATCH:-2}  # (not SECONDS: bash counts time in it)
threads=${THREADS:-2}
. bench/peer.sh
peer=$(peer_python onnxruntime numpy)
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p modelsmith-cli -p modelsmith --bin modelsmith --example infer_bench
bin=$target/release/modelsmith
bench=$target/release/examples/infer_bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

model=${1:-}
if [ -z "$model" ]; then
  model=$tmp/model
  "$bin" train --data digits --model seed-cnn --epochs 1 --out "$model" --quiet >/dev/null
fi
"$bin" export --model "$model" --format onnx --out "$tmp/model.onnx" >/dev/null

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$bench" "$model" --threads "$threads" --batches 1 --seconds 0.2 --dump "$tmp/ours.f32" >/dev/null
"$peer" bench/ort_infer.py "$tmp/model.onnx" --threads "$threads" --batches 1 --seconds 0.2 \
  --compare "$tmp/ours.f32" | grep '^compare'

: >"$tmp/lines"
for round in $(seq "$rounds"); do
  "$bench" "$model" --threads "$threads" --batches 1,32 --seconds "$seconds" | sed "s/^/round=$round /" >>"$tmp/lines"
  "$peer" bench/ort_infer.py "$tmp/model.onnx" --threads "$threads" --batches 1,32 --seconds "$seconds" \
    | sed "s/^/round=$round /" >>"$tmp/lines"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$tmp/lines" <<'EOF'
import sys
rows = [dict(kv.split("=") for kv in line.split()) for line in open(sys.argv[1])]
print(f"{'round':>5} {'engine':<12} {'batch':>5} {'images/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
for r in rows:
    print(f"{r['round']:>5} {r['engine']:<12} {r['batch']:>5} {float(r['images_per_s']):>10.0f} "
          f"{float(r['p50_ms']):>8.4f} {float(r['p99_ms']):>8.4f}")
by = {(r["round"], r["engine"], r["batch"]): r for r in rows}
for b in sorted({r["batch"] for r in rows}, key=int):
    ratios, p50s = [], []
    for rd in sorted({r["round"] for r in rows}, key=int):
        o, t = by[(rd, "modelsmith", b)], by[(rd, "onnxruntime", b)]
        ratios.append(float(o["images_per_s"]) / float(t["images_per_s"]))
        p50s.append(float(t["p50_ms"]) / float(o["p50_ms"]))
    print(f"batch {b:>2}: images/s ours/onnxruntime per round {', '.join(f'{x:.2f}' for x in ratios)}"
          f" (min {min(ratios):.2f}); p50 latency onnxruntime/ours {', '.join(f'{x:.2f}' for x in p50s)}")
EOF
