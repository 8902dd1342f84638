#!/usr/bin/env bash
# The GPU check: verifies the CUDA executor against the CPU and times it against PyTorch, on a
# machine with an NVIDIA GPU, using only binaries built beforehand (nothing is compiled there).
#
#   bench/gpu_check.sh prepare      # here (any x86-64 Linux with Rust): build, strip, copy to .gpu/
#   bench/gpu_check.sh run [OUT]    # on the GPU machine, from the repository root
#
# `prepare` puts into .gpu/ (ignored by git, ~60 MiB): the release `modelsmith` built with
# `--features cuda`, the `cuda_vs_cpu` test binary, the `cuda_seed_step` throughput program, and
# a copy of Fashion-MNIST for machines without /usr/share/datasets/fashion-mnist. Carry `.gpu`
# with the working tree (the device tool's `carry: [".gpu"]`).
#
# `run` (about 6 minutes on an H200) writes its logs and summary.md under OUT (default $OUT or
# /tmp/gpu_check):
#   1. the cuda_vs_cpu tests with MODELSMITH_REQUIRE_GPU=1 (a missing GPU fails them);
#   2. training images/s of the seed CNN on Fashion-MNIST resident on the GPU at batch 32, 128,
#      512 and 2048: ours (fp32, then TF32 convolutions) and bench/torch_seed.py (PyTorch eager,
#      its defaults), interleaved, two rounds;
#   3. several trainings at once on the GPU at batch 128 (1, 4 and 8 trials), summed images/s;
#   4. the seed recipe (examples/seed-fashion.toml) on the GPU and on the CPU, same seed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.gpu

prepare() {
    set -e
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
    cargo build --release --locked -p modelsmith-cli --features cuda
    cargo build --release --locked -p modelsmith-engine --features cuda --example cuda_seed_step
    # The test binary: cargo prints its path with --message-format=json.
    local test_bin
    test_bin=$(cargo test --release --locked -p modelsmith-engine --features cuda --test cuda_vs_cpu \
        --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda_vs_cpu":
        print(m["executable"])')
    mkdir -p "$BIN/fashion-mnist"
    local exclude
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
    strip -o "$BIN/modelsmith" "$CARGO_TARGET_DIR/release/modelsmith"
    strip -o "$BIN/cuda_seed_step" "$CARGO_TARGET_DIR/release/examples/cuda_seed_step"
    strip -o "$BIN/cuda_vs_cpu" "$test_bin"
    cp /usr/share/datasets/fashion-mnist/*.gz "$BIN/fashion-mnist/"
    du -sh "$BIN" "$BIN"/*
}

run() {
    local out=${1:-${OUT:-/tmp/gpu_check}}
    mkdir -p "$out"
    # Where the H200 machine keeps CUDA 13's cuBLAS and NVRTC (cuDNN and the driver are in the
    # default search path).
    export LD_LIBRARY_PATH=/usr/local/cuda/targets/x86_64-linux/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
    local data=/usr/share/datasets/fashion-mnist
    [ -e "$data/train-images-idx3-ubyte.gz" ] || data=$PWD/$BIN/fashion-mnist
    [ -e "$data/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST: run prepare"; exit 2; }
    for f in modelsmith cuda_vs_cpu cuda_seed_step; do
        [ -x "$BIN/$f" ] || { echo "$BIN/$f missing: run bench/gpu_check.sh prepare first"; exit 2; }
    done
    {
        date -u
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        uptime
        python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
    } 2>&1 | tee "$out/machine.txt"

    echo "== 1. cuda_vs_cpu with MODELSMITH_REQUIRE_GPU=1"
    MODELSMITH_REQUIRE_GPU=1 timeout 180 "$BIN/cuda_vs_cpu" --test-threads 1 2>&1 | tee "$out/tests.log"
    echo "tests exit ${PIPESTATUS[0]}" | tee -a "$out/tests.log"

    echo "== 2. throughput, ours and PyTorch interleaved"
    : >"$out/throughput.jsonl"
    for round in 1 2; do
        MODELSMITH_CUDA_TF32=0 timeout 120 "$BIN/cuda_seed_step" --data "$data" --seconds 3 \
            | tee -a "$out/throughput.jsonl"
        timeout 150 python3 bench/torch_seed.py --data "$data" --seconds 3 \
            | tee -a "$out/throughput.jsonl"
        MODELSMITH_CUDA_TF32=1 timeout 120 "$BIN/cuda_seed_step" --data "$data" --seconds 3 \
            | tee -a "$out/throughput.jsonl"
    done

    echo "== 3. several trials per GPU at batch 128"
    : >"$out/trials.jsonl"
    for k in 1 4 8; do
        timeout 90 "$BIN/cuda_seed_step" --data "$data" --batches 128 --seconds 4 --trials $k \
            | tee -a "$out/trials.jsonl"
    done

    echo "== 4. the seed recipe on the GPU and on the CPU (same seed)"
    for device in cuda cpu; do
        local t0=$SECONDS
        timeout 600 "$BIN/modelsmith" train \
            --config examples/seed-fashion.toml --data "idx:$data" --device $device \
            --out "/tmp/recipe-$device" --json -q >"$out/recipe_$device.json" 2>"$out/recipe_$device.log"
        echo "$device: exit $?, $((SECONDS - t0)) s wall $(tail -1 "$out/recipe_$device.log")"
        cat "$out/recipe_$device.json"
    done

    python3 - "$out" <<'EOF' | tee "$out/summary.md"
import json, statistics, sys
out = sys.argv[1]
def load(name):
    try:
        return [json.loads(l) for l in open(f"{out}/{name}") if l.startswith("{")]
    except OSError:
        return []
def med(engine, batch, trials=1, tf32=None, rows=load("throughput.jsonl")):
    v = [r["images_per_second"] for r in rows if r["engine"] == engine and r["batch"] == batch
         and r["trials"] == trials and (tf32 is None or r.get("tf32") == tf32)]
    return (statistics.median(v), min(v), max(v)) if v else None
print("| batch | ours fp32 (median, range) | ours TF32 | PyTorch eager | ours fp32 / PyTorch |")
print("|---|---|---|---|---|")
for b in (32, 128, 512, 2048):
    o, t, p = med("modelsmith", b, tf32=False), med("modelsmith", b, tf32=True), med("pytorch", b)
    f = lambda m: f"{m[0]:,.0f} ({m[1]:,.0f}-{m[2]:,.0f})" if m else "-"
    ratio = f"{o[0] / p[0]:.2f}x" if o and p else "-"
    print(f"| {b} | {f(o)} | {f(t)} | {f(p)} | {ratio} |")
print()
for k in (1, 4, 8):
    m = med("modelsmith", 128, trials=k, rows=load("trials.jsonl"))
    print(f"- {k} trial(s) at batch 128: {m[0]:,.0f} img/s summed" if m else f"- {k} trials: -")
for device in ("cuda", "cpu"):
    try:
        r = json.load(open(f"{out}/recipe_{device}.json"))
        print(f"- seed recipe on {device}: test accuracy {r['test_accuracy']*100:.2f}%, "
              f"{r['epochs_run']} epochs, {r['images_per_second']:,.0f} img/s")
    except Exception as e:
        print(f"- seed recipe on {device}: no result ({e})")
EOF
}

case "${1:-}" in
prepare) prepare ;;
run) shift; run "$@" ;;
*) echo "usage: $0 prepare | run [OUT]"; exit 2 ;;
esac
