# Inference speed of an exported model in onnxruntime: the peer of
# crates/modelsmith/examples/infer_bench.rs (bench/infer_vs_ort.sh runs both interleaved).
#
#   /tmp/peer/bin/python bench/ort_infer.py ONNX_FILE [--threads 2] [--batches 1,32]
#       [--seconds 2] [--compare FILE]
#
# Same images (the bundled MNIST test digits, data/digits, preprocessed as the ONNX metadata
# `modelsmith.preprocessing` says), same batch sizes, same statistics as the Rust side: per batch
# size a warm-up of a fifth of the measuring time, then `session.run` on consecutive test images
# (wrapping around) for `--seconds` of summed call time, each call timed. One line per batch size:
#   engine=onnxruntime batch=B calls=N images_per_s=... p50_ms=... p99_ms=...
# The session uses intra_op_num_threads=THREADS, inter_op_num_threads=1, sequential execution
# and all graph optimisations. `--compare FILE` (probabilities of the first 1,024 test digits from
# `infer_bench --dump FILE`, little-endian f32) prints the largest absolute difference to
# onnxruntime's on the same digits run at batch 32, and whether the argmax agrees.
import argparse, gzip, json, os, struct, sys, time

import numpy as np
import onnxruntime as ort

parser = argparse.ArgumentParser()
parser.add_argument("onnx")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--batches", default="1,32")
parser.add_argument("--seconds", type=float, default=2.0)
parser.add_argument("--compare")
args = parser.parse_args()
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


opts = ort.SessionOptions()
opts.intra_op_num_threads = args.threads
opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
pre = json.loads(meta["modelsmith.preprocessing"])
assert pre["kind"] == "image" and meta["modelsmith.input_layout"] == "NHWC", meta
(inp,), (out,) = session.get_inputs(), session.get_outputs()

images = read_idx(os.path.join(root, "data/digits/t10k-images-idx3-ubyte.gz"))
x = np.ascontiguousarray(images.astype(np.float32)[..., None] * np.float32(pre["scale"]))
count = len(x)


def batch_at(start, b):
    """`b` consecutive test images from `start`, wrapping around (a copy only when it wraps)."""
    if start + b <= count:
        return x[start : start + b]
    return np.concatenate([x[start:], x[: start + b - count]])


if args.compare:
    ours = np.fromfile(args.compare, dtype="<f4")
    n = min(1024, count)
    ours = ours.reshape(n, -1)
    theirs = np.concatenate(
        [session.run([out.name], {inp.name: x[s : min(s + 32, n)]})[0] for s in range(0, n, 32)]
    )
    diff = float(np.abs(theirs - ours).max())
    agree = int((theirs.argmax(1) == ours.argmax(1)).sum())
    print(f"compare: {n} test digits, max |onnxruntime - modelsmith| = {diff:.3e}, argmax agrees on {agree}/{n}")

for b in [int(v) for v in args.batches.split(",")]:
    start = 0
    warm_until = time.perf_counter() + args.seconds / 5
    while time.perf_counter() < warm_until:
        session.run([out.name], {inp.name: batch_at(start, b)})
        start = (start + b) % count
    times = []
    total = 0.0
    while total < args.seconds:
        feed = {inp.name: batch_at(start, b)}
        t = time.perf_counter()
        session.run([out.name], feed)
        dt = time.perf_counter() - t
        times.append(dt)
        total += dt
        start = (start + b) % count
    times.sort()
    pct = lambda q: times[int(round((len(times) - 1) * q))] * 1e3
    print(
        f"engine=onnxruntime batch={b} calls={len(times)} images_per_s={len(times) * b / total:.0f} "
        f"p50_ms={pct(0.5):.4f} p99_ms={pct(0.99):.4f}"
    )
    sys.stdout.flush()
