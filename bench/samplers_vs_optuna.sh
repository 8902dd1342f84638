#!/usr/bin/env bash
# Sampler quality and suggestion overhead, Modelsmith beside Optuna, in one run on one machine.
#
#   bench/samplers_vs_optuna.sh [N_TRIALS=60] [SEEDS=5] [OVERHEAD_N=1000]
#
# The Optuna peer (optuna, cmaes) is installed into /tmp/peer on first use (bench/peer.sh;
# PEER_PYTHON overrides the interpreter). Quality: branin, hartmann6, styblinski-tang-8, the
# median best value over SEEDS seeds after N_TRIALS trials (lower is better, 0 is optimal).
# Overhead: milliseconds for one more trial once the study holds OVERHEAD_N complete trials.
set -euo pipefail
cd "$(dirname "$0")/.."
n_trials=${1:-60}
seeds=${2:-5}
overhead_n=${3:-1000}
. bench/peer.sh
peer=$(peer_python optuna cmaes)
cargo build --release -q -p modelsmith --example sampler_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/sampler_bench

echo "== quality: $n_trials trials, $seeds seeds (median best; 0 is the optimum) =="
echo "-- modelsmith"
"$bin" "$n_trials" "$seeds"
echo "-- optuna"
"$peer" bench/optuna_functions.py "$n_trials" "$seeds"

echo "== overhead: one more trial at $overhead_n complete trials (8 parameters) =="
echo "-- modelsmith"
"$bin" overhead "$overhead_n"
echo "-- optuna"
"$peer" bench/optuna_overhead.py "$overhead_n"
