# Permutation importance beside scikit-learn's: a table of 8 uniform columns of which only x3
# and x6 carry the target, a modelsmith model trained on it, `modelsmith explain` on the test
# rows, and sklearn.inspection.permutation_importance on the same test rows with the same
# model (its ONNX export in onnxruntime, wrapped as an estimator; columns standardized as the
# ONNX metadata says). Prints one line per column: ours with its interval, sklearn's mean and
# whether it lies inside our interval; exits 1 if x3 and x6 are not first and second, if
# another column's interval excludes 0, or if sklearn's mean falls outside our interval.
#
# Run:  /tmp/peer/bin/python bench/explain_permutation.py [classification|regression]
#           [MODELSMITH=target/release/modelsmith]
import json, os, subprocess, sys, tempfile

import numpy as np
import onnxruntime as ort
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.inspection import permutation_importance

task = sys.argv[1] if len(sys.argv) > 1 else "classification"
binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/modelsmith"
work = tempfile.mkdtemp(prefix="explain-permutation-")
rng = np.random.default_rng(7)
names = [f"x{i}" for i in range(1, 9)]


def table(n):
    x = rng.uniform(-1, 1, (n, 8))
    if task == "regression":
        y = 3 * x[:, 2] - 2 * x[:, 5] + rng.normal(0, 0.1, n)
    else:
        y = np.where(x[:, 2] - 0.7 * x[:, 5] > 0, "yes", "no")
    return x, y


def write(path, x, y):
    with open(path, "w") as f:
        f.write(",".join(names) + ",y\n")
        for row, target in zip(x, y):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{target if task != 'regression' else f'{target:.5f}'}\n")


xtr, ytr = table(2000)
xte, yte = table(500)
write(f"{work}/train.csv", xtr, ytr)
write(f"{work}/test.csv", xte, yte)
model = f"{work}/model"
run = lambda *a: subprocess.run([binary, *a], check=True, capture_output=True, text=True)
run("train", "--data", f"csv:{work}/train.csv", "--test-data", f"csv:{work}/test.csv",
    "--target", "y", "--task", task, "--out", model, "--seed", "1")
ours = json.loads(run("explain", "--model", model, "--method", "permutation", "--repeats", "10",
                      "--json").stdout)["permutation"]
run("export", "--model", model, "--format", "onnx", "--out", f"{work}/model.onnx")

session = ort.InferenceSession(f"{work}/model.onnx", providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
columns = json.loads(meta["modelsmith.preprocessing"])["columns"]
mean = np.array([c["kind"]["numeric"]["mean"] for c in columns])
std = np.array([c["kind"]["numeric"]["std"] for c in columns])
classes = json.loads(meta["modelsmith.task"]).get("classes")


class OnnxEstimator(RegressorMixin if task == "regression" else ClassifierMixin, BaseEstimator):
    """The exported model as scikit-learn sees an estimator: fit does nothing, predict runs it."""

    classes_ = np.array(classes) if classes else None

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, x, y):
        return self

    def predict(self, x):
        inputs = ((x - mean) / std).astype(np.float32)
        out = session.run(None, {"input": inputs})[0]
        if classes is None:
            return out[:, 0]
        return np.array(classes)[out.argmax(axis=1)]


if task == "regression":
    scoring = "neg_root_mean_squared_error"  # higher is better; drop = RMSE gained
else:
    scoring = "accuracy"
sk = permutation_importance(OnnxEstimator(), xte, yte, scoring=scoring, n_repeats=10, random_state=0)

failed = False
by_name = {c["column"]: c for c in ours["columns"]}
print(f"{task}: {ours['metric']} {ours['score']:.4f} on {ours['rows']} test rows, 10 repeats each")
print(f"{'column':<8} {'ours':>9} {'95% interval':>22} {'sklearn':>9}  inside")
for rank, c in enumerate(ours["columns"]):
    s = sk.importances_mean[names.index(c["column"])]
    inside = c["low"] <= s <= c["high"]
    print(f"{c['column']:<8} {c['importance']:+9.4f} [{c['low']:+9.4f}, {c['high']:+9.4f}] {s:+9.4f}  {inside}")
    failed |= not inside
    if rank >= 2:
        failed |= not (c["low"] <= 0 <= c["high"])
top = [c["column"] for c in ours["columns"][:2]]
failed |= top != ["x3", "x6"]
print("top two:", top, "| FAILED" if failed else "| ok")
sys.exit(1 if failed else 0)
