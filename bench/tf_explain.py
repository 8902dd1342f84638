# TensorFlow's side of the explanation checks: the same network as a modelsmith model folder
# (weights read from its weights.safetensors), explained with tf.GradientTape.
#
#   fixture MODEL OUT [N]   saliency and Integrated Gradients (black baseline, 50 Gauss-Legendre
#                           steps) of the first N (100) test digits of data/digits, each for the
#                           class TensorFlow predicts, in float64, written to OUT as safetensors: what
#                           crates/modelsmith/tests/explain_tf.rs checks the engine against.
#   speed MODEL [REPEATS]   seconds (float32, as models run) for Integrated Gradients with 50 steps on 1 image and on a
#                           batch of 64 (best of REPEATS), as one JSON line: the peer in
#                           bench/explain_speed.sh.
#
# Run: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install tensorflow-cpu
import gzip, json, os, struct, sys, time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
from tensorflow import keras

# The fixture is a float64 reference; speed is measured as models run, in float32.
keras.backend.set_floatx("float32" if sys.argv[1:2] == ["speed"] else "float64")

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "data", "digits")
STEPS = 50


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        data = a.astype("<f4").tobytes() if a.dtype != np.int32 else a.astype("<i4").tobytes()
        dtype = "I32" if a.dtype == np.int32 else "F32"
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def keras_model(model_dir):
    """The model folder's network in Keras, with its weights, computing in float64 (set
    before any layer is built): the reference should not share float32's rounding, least of all
    in 1 - p for a confident prediction."""
    meta = json.load(open(os.path.join(model_dir, "model.json")))
    weights = read_safetensors(os.path.join(model_dir, "weights.safetensors"))
    h, w, c = meta["input_shape"]
    inputs = keras.Input((h, w, c), dtype=keras.backend.floatx())
    x, counts, loads = inputs, {}, []
    for spec in meta["spec"]["layers"]:
        kind = spec["type"]
        counts[kind] = counts.get(kind, 0) + 1
        name = spec.get("name") or f"{kind}_{counts[kind]}"
        if kind == "conv2d":
            layer = keras.layers.Conv2D(spec["filters"], spec["kernel"], strides=spec.get("stride", 1),
                                        padding=spec.get("padding", "valid"), use_bias=spec.get("bias", True),
                                        activation=spec.get("activation", "linear"))
            x = layer(x)
            kernel = np.transpose(weights[f"{name}.weight"], (1, 2, 3, 0))  # [out,kh,kw,in] -> HWIO
            loads.append((layer, [kernel] + ([weights[f"{name}.bias"]] if spec.get("bias", True) else [])))
        elif kind == "max_pool2d":
            x = keras.layers.MaxPool2D(spec.get("pool", 2), strides=spec.get("stride"),
                                       padding=spec.get("padding", "valid"))(x)
        elif kind == "flatten":
            x = keras.layers.Flatten()(x)
        elif kind == "dense":
            layer = keras.layers.Dense(spec["units"], use_bias=spec.get("bias", True),
                                       activation=spec.get("activation", "linear"))
            x = layer(x)
            loads.append((layer, [weights[f"{name}.weight"]] + ([weights[f"{name}.bias"]] if spec.get("bias", True) else [])))
        else:
            raise SystemExit(f"tf_explain.py: layer type {kind} is not mapped to Keras here")
    for layer, ws in loads:
        layer.set_weights([v.astype(keras.backend.floatx()) for v in ws])
    return keras.Model(inputs, x), meta


def test_digits(n):
    with gzip.open(os.path.join(DIGITS, "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    count, rows, cols = struct.unpack(">III", raw[4:16])
    pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, rows, cols, 1)[:n]
    # As the engine: pixel * (1/255 in f32).
    return pixels.astype(np.float32) * np.float32(1.0 / 255.0)


def gauss_legendre(n):
    z, w = np.polynomial.legendre.leggauss(n)
    return (z + 1.0) / 2.0, w / 2.0


def make_fns(model):
    @tf.function(reduce_retracing=True)
    def grads(x, t):
        with tf.GradientTape() as tape:
            tape.watch(x)
            p = model(x, training=False)
            pt = tf.gather(p, t, batch_dims=1)
        return tape.gradient(pt, x), pt

    def integrated_gradients(x, t, steps=STEPS):
        alphas, weights = gauss_legendre(steps)
        n = x.shape[0]
        baseline = np.zeros_like(x)
        path = (baseline[:, None] + alphas.astype(np.float32)[None, :, None, None, None] * (x - baseline)[:, None])
        path = path.reshape((n * steps,) + x.shape[1:])
        g, _ = grads(tf.constant(path.astype(keras.backend.floatx())), tf.constant(np.repeat(t, steps)))
        g = g.numpy().astype(np.float64).reshape((n, steps) + x.shape[1:])
        avg = np.tensordot(weights, g, axes=([0], [1]))
        return (avg * (x - baseline)).astype(np.float32)

    return grads, integrated_gradients


def fixture(model_dir, out, n=100):
    model, _ = keras_model(model_dir)
    x = test_digits(n)
    grads, ig = make_fns(model)
    t = np.argmax(model(x.astype(keras.backend.floatx()), training=False).numpy(), axis=1).astype(np.int32)
    saliency, _ = grads(tf.constant(x.astype(keras.backend.floatx())), tf.constant(t))
    attributions = ig(x, t)
    write_safetensors(out, {
        "targets": t,
        "input_sums": x.reshape(n, -1).sum(axis=1),
        "saliency": saliency.numpy(),
        "integrated_gradients": attributions,
    })
    print(f"wrote {out}: {n} digits, tensorflow {tf.__version__}", file=sys.stderr)


def speed(model_dir, repeats=5):
    model, _ = keras_model(model_dir)
    _, ig = make_fns(model)
    out = {"tensorflow": tf.__version__, "steps": STEPS}
    for n in (1, 64):
        x = test_digits(n)
        t = np.argmax(model(x.astype(keras.backend.floatx()), training=False).numpy(), axis=1).astype(np.int32)
        ig(x, t)  # trace once
        best = min(timed(lambda: ig(x, t)) for _ in range(repeats))
        out[f"ig_{n}_seconds"] = best
    print(json.dumps(out))


def timed(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("fixture", "speed"):
        raise SystemExit(__doc__ or "usage: tf_explain.py fixture MODEL OUT [N] | speed MODEL [REPEATS]")
    if sys.argv[1] == "fixture":
        fixture(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 100)
    else:
        speed(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5)
