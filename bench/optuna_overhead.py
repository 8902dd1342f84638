# Peer of `sampler_bench overhead`: Optuna's cost per trial once a study holds many trials.
# A study of the 8-parameter Styblinski-Tang space is filled with N complete trials from
# RandomSampler(seed=0); then the sampler is switched (TPESampler(seed=0), and RandomSampler as
# the baseline: the study loop and storage alone) and REPEATS further trials are run, one
# `study.optimize(f, n_trials=1)` call each. Prints their mean and median wall time per trial.
# Run:  /tmp/peer/bin/python bench/optuna_overhead.py [N=1000] [REPEATS=10]
import statistics, sys, time, warnings
import numpy as np
import optuna
warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)

def styblinski_tang8(t):
    x = np.array([t.suggest_float(f"x{i}", -5, 5) for i in range(8)])
    return float(0.5 * np.sum(x ** 4 - 16 * x ** 2 + 5 * x)) + 39.16599 * 8

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SAMPLERS = {
    "random": lambda: optuna.samplers.RandomSampler(seed=0),
    "tpe": lambda: optuna.samplers.TPESampler(seed=0),
}
for name, make in SAMPLERS.items():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fill = time.perf_counter()
    study.optimize(styblinski_tang8, n_trials=n)
    fill_s = time.perf_counter() - fill
    study.sampler = make()
    start = time.perf_counter()
    each = []
    for _ in range(repeats):
        one = time.perf_counter()
        study.optimize(styblinski_tang8, n_trials=1)
        each.append((time.perf_counter() - one) * 1000)
    per_call = (time.perf_counter() - start) * 1000 / repeats
    median_call = statistics.median(each)
    start = time.perf_counter()
    study.optimize(styblinski_tang8, n_trials=repeats)
    in_one_call = (time.perf_counter() - start) * 1000 / repeats
    print(f"overhead {name} trials={n} ms_per_trial={per_call:.3f} median_ms_per_trial={median_call:.3f} ms_per_trial_in_one_call={in_one_call:.3f} "
          f"(optuna {optuna.__version__}, means of {repeats}; filling with random took {fill_s:.2f} s)")
