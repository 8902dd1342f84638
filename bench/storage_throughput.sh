#!/usr/bin/env bash
# Trials per second a storage sustains with WORKERS processes and trivially cheap trials (the
# objective is a quadratic of two sampled floats, random sampler), for our SQLite and
# PostgreSQL storages and, as the peer, Optuna's RDB storage on the same PostgreSQL server.
# Rounds are interleaved (ours-sqlite, ours-postgres, optuna-postgres, again ...); each run
# gets a fresh file or database. Every worker sets up first and starts its first trial at the
# same moment (GO), so process and interpreter start-up are not measured; trials/s is the
# study's trials divided by the time from GO to the last worker's end.
# Usage: bench/storage_throughput.sh [TRIALS=2000] [ROUNDS=3] [WORKERS=8]
# Needs: PostgreSQL server binaries (scripts/pg-test-server starts a throw-away server), and
# the peer venv /tmp/peer with optuna and psycopg2-binary (PEER_PYTHON to override).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-2000}
rounds=${2:-3}
workers=${3:-8}
target=${CARGO_TARGET_DIR:-target}
. bench/peer.sh
py=$(peer_python optuna psycopg2-binary)
cargo build --release --quiet -p modelsmith --example storage_throughput
bin=$target/release/examples/storage_throughput

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'scripts/pg-test-server stop "$tmp/pg"; rm -rf "$tmp"' EXIT
url=$(scripts/pg-test-server start "$tmp/pg")
base=${url%/*}   # postgres://user:pass@host:port

# run KIND N: one run; prints "KIND trials/s" and a detail line.
run() {
  local kind=$1 n=$2 store out go
  case $kind in
    ours-sqlite) store="sqlite:$tmp/run$n.db" ;;
    ours-postgres|optuna-postgres)
      psql -q "$url" -c "CREATE DATABASE run$n" >/dev/null
      store="$base/run$n" ;;
  esac
  out=$tmp/out$n
  : >"$out"
  go=$(python3 -c "import time; print(time.time() + 1.5 + 0.6 * $workers)")
  if [ "$kind" = optuna-postgres ]; then
    local ourl="postgresql+psycopg2://${store#postgres://}"
    "$py" -c "import optuna; optuna.create_study(study_name='bench', storage='$ourl')" 2>/dev/null
    for _ in $(seq "$workers"); do "$py" bench/storage_optuna.py "$ourl" bench "$trials" "$go" >>"$out" & done
  else
    "$bin" "$store" bench 0 0 >/dev/null 2>&1 || true   # create the store and study first
    for _ in $(seq "$workers"); do "$bin" "$store" bench "$trials" "$go" random >>"$out" & done
  fi
  wait
  python3 - "$kind" "$out" "$go" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
kind, path, go, load = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in open(path) if l.strip()]
done = sum(r["complete"] for r in rows)
wall = max(r["end"] for r in rows) - go
late = sum(1 for r in rows if r["late"])
print(f"{kind:16s} {done / wall:8.1f} trials/s  ({done} trials in {wall:.2f} s, "
      f"{len(rows)} workers, {late} late, load {load})")
PY
}

echo "storage throughput: $workers workers, $trials trials per run, random sampler; $(nproc) cores"
n=0
for round in $(seq "$rounds"); do
  for kind in ours-sqlite ours-postgres optuna-postgres; do
    n=$((n + 1))
    run "$kind" "$n"
  done
done
