#!/usr/bin/env bash
# Serving under load: `modelsmith serve` beside the same model's ONNX file behind onnxruntime
# (bench/ort_server.py), both hit by one load generator with identical KServe v2 requests (one
# real test digit per request) on loopback.
#
#   [ROUNDS=2] [SECONDS_PER_RUN=20] [CONNECTIONS=32] [MODE=infer] [MAX_DELAY_MS=0] [MAX_BATCH=32] \
#   [HTTP_THREADS=N] bench/serve_load.sh [MODEL_DIR]
#
# MODEL_DIR defaults to /tmp/serve-model/digits, trained first (seed CNN, 2 epochs) if missing.
# The peer (onnxruntime numpy uvicorn httptools uvloop orjson) is installed into /tmp/peer on first
# use (bench/peer.sh; PEER_PYTHON overrides).
# Runs alternate (ours, peer, ours, peer) so machine noise hits
# both; the load generator runs on the same 2 cores as the server. Every run is bounded
# (SECONDS_PER_RUN plus a 2 s warm-up) and targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/tmp/serve-model/digits}
seconds=${SECONDS_PER_RUN:-20}
connections=${CONNECTIONS:-32}
mode=${MODE:-infer}
. bench/peer.sh
peer=$(peer_python onnxruntime numpy uvicorn httptools uvloop orjson)
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p modelsmith-cli -p modelsmith-server --bins --example loadgen
bin=$target/release/modelsmith
loadgen=$target/release/examples/loadgen
name=$(basename "$model")
if [ ! -f "$model/model.json" ]; then
  "$bin" train --epochs 2 --out "$model" --json >/dev/null
fi
tmp=$(mktemp -d)
"$bin" export --model "$model" --format onnx --out "$tmp/model.onnx"

"$bin" serve --model "$model" --addr 127.0.0.1:18080 --max-batch "${MAX_BATCH:-32}" \
  --max-delay-ms "${MAX_DELAY_MS:-0}" ${HTTP_THREADS:+--http-threads "$HTTP_THREADS"} 2>"$tmp/ours.log" &
ours_pid=$!
"$peer" bench/ort_server.py --onnx "$tmp/model.onnx" --name "$name" --port 18081 --threads 2 \
  2>"$tmp/peer.log" &
peer_pid=$!
trap 'kill $ours_pid $peer_pid 2>/dev/null; wait $ours_pid $peer_pid 2>/dev/null; rm -rf "$tmp"' EXIT

wait_ready() {
  for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/v2/health/ready', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "server on port $1 did not become ready" >&2
  cat "$tmp"/*.log >&2
  exit 1
}
wait_ready 18080
wait_ready 18081

echo "load: $(uptime | sed 's/.*load average/load average/')  cores: $(nproc)  mode: $mode  connections: $connections  seconds: $seconds"
printf '%-12s %5s %10s %9s %9s %9s %7s\n' server round req/s p50_ms p99_ms max_ms errors
for round in $(seq "${ROUNDS:-2}"); do
  for side in modelsmith onnxruntime; do
    port=18080; [ "$side" = onnxruntime ] && port=18081
    "$loadgen" --url "http://127.0.0.1:$port" --model "$name" --mode "$mode" \
      --connections "$connections" --seconds "$seconds" --json >"$tmp/run.json"
    python3 - "$tmp/run.json" "$side" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<12} {sys.argv[3]:>5} {r['rps']:>10.0f} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {r['max_ms']:>9.3f} {r['errors']:>7}"
      + (f"  first error: {r['first_error']}" if r['errors'] else ""))
PY
  done
done
