# Peer for sampler quality: Optuna's random, TPE and CMA-ES samplers on the test functions that
# `cargo run --release -p modelsmith --example sampler_bench` runs (each shifted so that the global
# minimum is 0). Prints, per function and sampler, the median best value after N trials over S
# seeds and the median milliseconds per trial.
# Run (bench/samplers_vs_optuna.sh installs the peer): PYTHON bench/optuna_functions.py [N=60] [S=5]
import math, statistics, sys, time, warnings
import numpy as np
import optuna

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def branin(trial):
    x, y = trial.suggest_float("x", -5, 10), trial.suggest_float("y", 0, 15)
    b, c = 5.1 / (4 * math.pi ** 2), 5 / math.pi
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10 - 0.397887


# Hartmann-6's standard constants.
HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                              [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(trial):
    x = np.array([trial.suggest_float(f"x{i}", 0, 1) for i in range(6)])
    inner = np.sum(HARTMANN_A * (x - HARTMANN_P) ** 2, axis=1)
    return -float(np.sum(HARTMANN_ALPHA * np.exp(-inner))) + 3.32237


def styblinski_tang8(trial):
    x = np.array([trial.suggest_float(f"x{i}", -5, 5) for i in range(8)])
    return float(0.5 * np.sum(x ** 4 - 16 * x ** 2 + 5 * x)) + 39.16599 * 8


SAMPLERS = {
    "random": optuna.samplers.RandomSampler,
    "tpe": optuna.samplers.TPESampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}
n_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 60
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
for name, objective in [("branin", branin), ("hartmann6", hartmann6),
                        ("styblinski_tang8", styblinski_tang8)]:
    for sampler, make in SAMPLERS.items():
        bests, ms = [], []
        for seed in range(seeds):
            study = optuna.create_study(sampler=make(seed=seed))
            start = time.time()
            study.optimize(objective, n_trials=n_trials)
            ms.append((time.time() - start) * 1000 / n_trials)
            bests.append(study.best_value)
        print(f"{name} {sampler} median_best={statistics.median(bests):.4f} "
              f"ms_per_trial={statistics.median(ms):.2f}")
