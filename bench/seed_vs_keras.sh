#!/usr/bin/env bash
# Training speed and peak memory of the seed CNN, Modelsmith beside Keras, in one run on one machine.
#
#   [ROUNDS=2] bench/seed_vs_keras.sh [EPOCHS] [BATCHES...]   (defaults: 1 epoch, batches 32 and 128)
#
# Needs: the release binary (cargo build --release), Fashion-MNIST (apt-get install -y
# dataset-fashion-mnist); the Keras peer (tensorflow-cpu) is installed into /tmp/peer on first use
# (bench/peer.sh). Both train on all 60,000 images with no validation
# split, so images/s counts the same work. Runs alternate (ours, Keras, ours, Keras) so that
# machine noise hits both; compare the ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-1}
shift || true
if [ $# -gt 0 ]; then batches=("$@"); else batches=(32 128); fi
data=/usr/share/datasets/fashion-mnist
. bench/peer.sh
peer=$(peer_python tensorflow-cpu)
bin=${CARGO_TARGET_DIR:-target}/release/modelsmith
[ -x "$bin" ] || cargo build --release -q
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

printf '%-10s %6s %12s %10s %10s\n' engine batch images/s seconds peak_MiB
for round in $(seq "${ROUNDS:-2}"); do
  for b in "${batches[@]}"; do
    /usr/bin/time -v "$bin" train --data fashion-mnist --epochs "$epochs" --batch-size "$b" \
      --validation-split 0 --patience 0 --out "$tmp/m" --json --quiet >"$tmp/ours.json" 2>"$tmp/ours.time"
    ours=$(python3 -c "import json,sys; r=json.load(open('$tmp/ours.json')); print(f\"{r['images_per_second']:.0f} {r['train_seconds']:.2f} {r['test_accuracy']:.4f}\")")
    read -r ips secs acc <<<"$ours"
    printf '%-10s %6s %12s %10s %10s   (round %s, test acc %s)\n' modelsmith "$b" "$ips" "$secs" "$(rss_mib "$tmp/ours.time")" "$round" "$acc"
    /usr/bin/time -v "$peer" bench/keras_seed.py "$data" "$epochs" "$b" >"$tmp/keras.out" 2>"$tmp/keras.time"
    line=$(tail -1 "$tmp/keras.out")
    kips=$(sed -n 's/.*images_per_s=\([0-9]*\).*/\1/p' <<<"$line")
    ksecs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
    kacc=$(sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p' <<<"$line")
    printf '%-10s %6s %12s %10s %10s   (round %s, test acc %s)\n' keras "$b" "$kips" "$ksecs" "$(rss_mib "$tmp/keras.time")" "$round" "$kacc"
  done
done
