# Checks an ONNX export in onnxruntime against Modelsmith's own inference on real test digits.
#
# Writes the first N images of the bundled MNIST test set (data/digits) as PNG files, asks
# `modelsmith predict --json --top-k CLASSES` for their probabilities, then runs the exported
# ONNX in onnxruntime on the same pixels preprocessed as the ONNX metadata says
# (`modelsmith.preprocessing`: pixel * scale, NHWC) -- once as one batch of N (the batch axis is
# dynamic) and once per image -- and prints the largest absolute difference. Exits 1 above 1e-4.
#
# Run:  modelsmith train --data digits --out /tmp/m --epochs 1
#       modelsmith export --model /tmp/m --format onnx --out /tmp/m.onnx
#       /tmp/peer/bin/python bench/onnx_check.py MODEL_DIR ONNX_FILE [N=64] [MODELSMITH=target/release/modelsmith]
import gzip, json, os, struct, subprocess, sys, tempfile, zlib

import numpy as np
import onnxruntime as ort

model_dir, onnx_path = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
binary = sys.argv[4] if len(sys.argv) > 4 else "target/release/modelsmith"
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_png(path, img):
    """8-bit grayscale PNG, no filtering."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


images = read_idx(os.path.join(root, "data/digits/t10k-images-idx3-ubyte.gz"))[:n]
labels = read_idx(os.path.join(root, "data/digits/t10k-labels-idx1-ubyte.gz"))[:n]

session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
pre = json.loads(meta["modelsmith.preprocessing"])
class_names = json.loads(meta["modelsmith.class_names"])
assert pre["kind"] == "image" and meta["modelsmith.input_layout"] == "NHWC", meta
(inp,), (out,) = session.get_inputs(), session.get_outputs()
print(f"onnxruntime {ort.__version__}; input {inp.name} {inp.shape}, output {out.name} {out.shape}")

with tempfile.TemporaryDirectory() as tmp:
    paths = []
    for i, img in enumerate(images):
        paths.append(os.path.join(tmp, f"digit-{i:04}.png"))
        write_png(paths[-1], img)
    result = subprocess.run(
        [binary, "predict", "--model", model_dir, "--json", "--top-k", str(len(class_names)), *paths],
        check=True,
        capture_output=True,
        text=True,
    )
predictions = json.loads(result.stdout)
ours = np.zeros((n, len(class_names)), dtype=np.float32)
for i, p in enumerate(predictions):
    for name, prob in p["top"]:
        ours[i, class_names.index(name)] = prob

x = images.astype(np.float32)[..., None] * np.float32(pre["scale"])  # [n, 28, 28, 1]
batched = session.run([out.name], {inp.name: x})[0]
single = np.concatenate([session.run([out.name], {inp.name: x[i : i + 1]})[0] for i in range(n)])
diff_batched = float(np.abs(batched - ours).max())
diff_single = float(np.abs(single - ours).max())
agree = int((batched.argmax(1) == ours.argmax(1)).sum())
acc = float((batched.argmax(1) == labels).mean())
print(f"{n} test digits: max |onnxruntime - modelsmith| = {diff_batched:.3e} (batch {n}), "
      f"{diff_single:.3e} (batch 1); argmax agrees on {agree}/{n}; onnxruntime accuracy {acc:.3f}")
sys.exit(0 if max(diff_batched, diff_single) <= 1e-4 else 1)
