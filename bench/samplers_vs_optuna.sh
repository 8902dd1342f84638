#!/usr/bin/env bash
# Sampler quality and suggestion overhead, Modelsmith beside Optuna, in one run on one machine.
#
#   bench/samplers_vs_optuna.sh [N_TRIALS=60] [SEEDS=5] [OVERHEAD_N=1000]
#
# Needs the Optuna peer: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install optuna cmaes
# (PEER_PYTHON overrides the interpreter). Quality: branin, hartmann6, styblinski-tang-8, the
# median best value over SEEDS seeds after N_TRIALS trials (lower is better, 0 is optimal).
# Overhead: milliseconds for one more trial once the study holds OVERHEAD_N complete trials.
set -euo pipefail
cd "$(dirname "$0")/.."
n_trials=${1:-60}
seeds=${2:-5}
overhead_n=${3:-1000}
peer=${PEER_PYTHON:-/tmp/peer/bin/python}
cargo build --release -q -p modelsmith --example sampler_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/sampler_bench

echo "== quality: $n_trials trials, $seeds seeds (median best; 0 is the optimum) =="
echo "-- modelsmith"
"$bin" "$n_trials" "$seeds"
echo "-- optuna"
"$peer" ../shared/bench/optuna_compare.py "$n_trials" "$seeds"

echo "== overhead: one more trial at $overhead_n complete trials (8 parameters) =="
echo "-- modelsmith"
"$bin" overhead "$overhead_n"
echo "-- optuna"
"$peer" bench/optuna_overhead.py "$overhead_n"
