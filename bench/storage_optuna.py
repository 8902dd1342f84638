"""One worker process of the Optuna peer in bench/storage_throughput.sh: the same trivially
cheap objective (a quadratic of two floats, RandomSampler) on Optuna's RDB storage, until
the study has TRIALS complete trials (MaxTrialsCallback). Starts its first trial at the unix
time GO, after its own start-up. Prints one JSON line.

Usage: storage_optuna.py STORAGE_URL NAME TRIALS GO
"""
import json
import os
import sys
import time

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, name, trials, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
storage = optuna.storages.RDBStorage(url, heartbeat_interval=None)
study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=os.getpid()))


def objective(trial):
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_float("y", -10.0, 10.0)
    return (x - 2.0) ** 2 + (y + 1.0) ** 2


late = time.time() > go
if not late:
    time.sleep(go - time.time())
t0 = time.perf_counter()
done = []
study.optimize(objective, n_trials=trials,
               callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE,)),
                          lambda s, t: done.append(t.number)])
print(json.dumps({"pid": os.getpid(), "complete": len(done),
                  "seconds": round(time.perf_counter() - t0, 3), "end": time.time(),
                  "late": late}))
