#!/usr/bin/env bash
# `modelsmith serve` beside KServe's Python ModelServer serving the same ONNX export through
# onnxruntime (bench/kserve_onnx_server.py), both loaded by the same tritonclient script
# (bench/serve_load.py): CLIENTS threads, batch 1 and 32, HTTP binary tensors and gRPC. The
# peers go into their own venv (PEER_SERVE_VENV, default /tmp/peer-serve) on first use.
# Usage: bench/serve_protocols.sh [SECONDS=10] [CLIENTS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
clients=${2:-32}
venv=${PEER_SERVE_VENV:-/tmp/peer-serve}
if ! "$venv/bin/python" -c "import kserve, onnxruntime, tritonclient.grpc, tritonclient.http" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q kserve onnxruntime "tritonclient[http,grpc]" numpy
fi
cargo build --release --quiet -p modelsmith-cli
bin=${CARGO_TARGET_DIR:-target}/release/modelsmith
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $("$venv/bin/pip" list 2>/dev/null | grep -E '^(kserve|onnxruntime|tritonclient) ' | tr -s ' ' | paste -sd, -)"
# The seed CNN on the bundled digits (two epochs: the network, not its accuracy, is what is timed).
"$bin" train --epochs 2 --out "$work/digits" -q
"$bin" export --model "$work/digits" --format onnx --out "$work/model.onnx" >/dev/null
wait_ready() {
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$1/v2/health/ready" >/dev/null && return 0
        sleep 0.2
    done
    echo "server on port $1 did not become ready" >&2
    exit 1
}
"$bin" serve --model "$work/digits" --name digits --addr 127.0.0.1:18080 --grpc-addr 127.0.0.1:18081 2>"$work/ours.log" &
pids+=($!)
wait_ready 18080
"$venv/bin/python" bench/serve_load.py modelsmith 127.0.0.1:18080 127.0.0.1:18081 --clients "$clients" --seconds "$seconds"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
"$venv/bin/python" bench/kserve_onnx_server.py "$work/model.onnx" 18090 18091 >"$work/kserve.log" 2>&1 &
pids+=($!)
wait_ready 18090
"$venv/bin/python" bench/serve_load.py kserve 127.0.0.1:18090 127.0.0.1:18091 --clients "$clients" --seconds "$seconds"
echo "work folder: $work"
