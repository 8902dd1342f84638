# Checks a table model's ONNX export in onnxruntime against `modelsmith predict --csv` on the
# rows of a CSV file: the rows are preprocessed in Python exactly as the ONNX metadata says
# (`modelsmith.preprocessing`: numbers standardized with the training mean and std, categories
# one-hot by the training vocabulary, missing values imputed), run through onnxruntime as one
# batch, and compared output by output (class probabilities, or values in the target's units).
# Prints the largest relative difference; exits 1 above 1e-4.
#
# Run:  /tmp/peer/bin/python bench/onnx_check_table.py MODEL_DIR ONNX_FILE FILE.csv [N=500]
#           [MODELSMITH=target/release/modelsmith]
import csv, io, json, os, subprocess, sys, tempfile

import numpy as np
import onnxruntime as ort

model_dir, onnx_path, table = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 500
binary = sys.argv[5] if len(sys.argv) > 5 else "target/release/modelsmith"
MISSING = {"", "na", "n/a", "nan", "null", "?"}

session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
pre = json.loads(meta["modelsmith.preprocessing"])
task = json.loads(meta["modelsmith.task"])
rows = list(csv.DictReader(open(table)))[:n]
# The first N rows as their own file, beside nothing of the user's.
fd, sample = tempfile.mkstemp(suffix=".csv")
with open(table) as src, os.fdopen(fd, "w") as dst:
    dst.writelines(line for _, line in zip(range(n + 1), src))


def encode(row):
    out = []
    for col in pre["columns"]:
        field = row[col["name"]].strip()
        kind = col["kind"]
        if "numeric" in kind:
            k = kind["numeric"]
            try:
                v = float(field)
                v = v if np.isfinite(v) else k["impute"]
            except ValueError:
                v = k["impute"]
            out.append((v - k["mean"]) / k["std"])
        else:
            k = kind["categorical"]
            value = k["impute"] if field.lower() in MISSING else field
            out.extend(1.0 if value == v else 0.0 for v in k["vocabulary"])
    return out


x = np.array([encode(r) for r in rows], dtype=np.float32)
ours_csv = subprocess.run([binary, "predict", "--model", model_dir, sample, "--csv"],
                          check=True, capture_output=True, text=True).stdout
os.unlink(sample)
ours_rows = list(csv.reader(io.StringIO(ours_csv)))[1:]
name = session.get_outputs()[0].name
theirs = session.run([name], {"input": x})[0]
if task["kind"] == "regression":
    ours = np.array([[float(v) for v in r[1:]] for r in ours_rows], dtype=np.float64)
else:
    # `predict --csv` prints the top class; compare its probability.
    ours = np.array([[float(r[2])] for r in ours_rows])
    theirs = theirs.max(axis=1, keepdims=True)
rel = np.abs(ours - theirs) / np.maximum(np.abs(ours), 1.0)
print(f"{len(rows)} rows, output '{name}' {theirs.shape}, task {task['kind']}: "
      f"max relative difference {rel.max():.2e}")
sys.exit(0 if rel.max() <= 1e-4 else 1)
