# Regenerates the TensorFlow reference fixture the engine's tests check against:
#   crates/engine/tests/fixtures/tensorflow_reference.json
# Forward outputs and gradients (for a given upstream gradient dy) of conv2d, max/avg pooling,
# dense, batch norm (training mode) and mean softmax cross-entropy; the first three steps of six
# Keras optimizers; Keras's inverse-time decay. Inputs are seeded, so a rerun with the same
# TensorFlow gives the same file; the TensorFlow version is recorded in "source".
#
# Layout (what the tests expect): NCHW activations, conv kernels (out, in, kh, kw), dense kernels
# (in, out). TensorFlow itself computes in NHWC with HWIO kernels; we transpose on the way out.
#
# Run: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install tensorflow-cpu
#      /tmp/peer/bin/python bench/tf_reference.py [OUT]
import json, os, sys
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
from tensorflow import keras

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "crates", "engine", "tests", "fixtures", "tensorflow_reference.json")
rng = np.random.default_rng(20261207)


def normal(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def nchw(a):  # NHWC -> NCHW
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


def oihw(w):  # HWIO -> OIHW
    return np.transpose(np.asarray(w), (3, 2, 0, 1))


def grads(f, inputs, dy):
    """y = f(*inputs) and the gradients of sum(y * dy) with respect to each input."""
    vs = [tf.Variable(v) for v in inputs]
    with tf.GradientTape() as tape:
        y = f(*vs)
    return y.numpy(), [g.numpy() for g in tape.gradient(y, vs, output_gradients=tf.constant(dy))]


def conv_case(name, n, c_in, hw, c_out, k, stride, padding):
    x = normal(n, hw, hw, c_in)
    w = normal(k, k, c_in, c_out) * 0.5
    b = normal(c_out)
    f = lambda x, w, b: tf.nn.conv2d(x, w, stride, padding.upper()) + b
    y = f(x, w, b).numpy()
    dy = normal(*y.shape)
    y, (dx, dw, db) = grads(f, [x, w, b], dy)
    return {"name": name, "op": "conv2d", "stride": stride, "padding": padding,
            "x_shape": list(nchw(x).shape), "x": flat(nchw(x)),
            "w_shape": list(oihw(w).shape), "w": flat(oihw(w)), "b": flat(b),
            "y_shape": list(nchw(y).shape), "y": flat(nchw(y)), "dy": flat(nchw(dy)),
            "dx": flat(nchw(dx)), "dw": flat(oihw(dw)), "db": flat(db)}


def pool_case(name, op, n, c, hw, k, stride, padding):
    x = normal(n, hw, hw, c)
    pool = tf.nn.max_pool2d if op == "maxpool2d" else tf.nn.avg_pool2d
    f = lambda x: pool(x, k, stride, padding.upper())
    y = f(x).numpy()
    dy = normal(*y.shape)
    y, (dx,) = grads(f, [x], dy)
    return {"name": name, "op": op, "kernel": k, "stride": stride, "padding": padding,
            "x_shape": list(nchw(x).shape), "x": flat(nchw(x)),
            "y_shape": list(nchw(y).shape), "y": flat(nchw(y)), "dy": flat(nchw(dy)),
            "dx": flat(nchw(dx))}


def dense_case():
    x, w, b = normal(4, 5), normal(5, 3), normal(3)
    f = lambda x, w, b: tf.matmul(x, w) + b
    dy = normal(4, 3)
    y, (dx, dw, db) = grads(f, [x, w, b], dy)
    return {"name": "dense", "op": "dense", "x_shape": [4, 5], "x": flat(x), "w_shape": [5, 3],
            "w": flat(w), "b": flat(b), "y": flat(y), "dy": flat(dy), "dx": flat(dx),
            "dw": flat(dw), "db": flat(db)}


def batchnorm_case():
    eps = 1e-5
    x = normal(3, 4, 4, 2) * 2.0 + 0.5
    gamma, beta = normal(2), normal(2)
    bn = keras.layers.BatchNormalization(epsilon=eps)
    bn.build(x.shape)
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    dy = normal(*x.shape)
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = bn(xv, training=True)
    dx, dgamma, dbeta = tape.gradient(y, [xv, bn.gamma, bn.beta], output_gradients=tf.constant(dy))
    return {"name": "batchnorm_train", "op": "batchnorm2d", "eps": eps,
            "x_shape": list(nchw(x).shape), "x": flat(nchw(x)), "gamma": flat(gamma),
            "beta": flat(beta), "y": flat(nchw(y.numpy())), "dy": flat(nchw(dy)),
            "dx": flat(nchw(dx.numpy())), "dgamma": flat(dgamma), "dbeta": flat(dbeta)}


def softmax_ce_case():
    logits = normal(5, 4) * 2.0
    labels = [0, 3, 1, 1, 2]
    v = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, v))
    return {"name": "softmax_ce_mean", "op": "softmax_cross_entropy", "logits_shape": [5, 4],
            "logits": flat(logits), "labels": labels, "loss": float(loss.numpy()),
            "dlogits": flat(tape.gradient(loss, v).numpy())}


def optimizer_cases():
    w0 = normal(6)
    steps = [normal(6) for _ in range(3)]
    specs = [
        ("sgd_momentum_keras", {"kind": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False},
         lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
        ("sgd_nesterov_keras", {"kind": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
         lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)),
        ("adam_keras", {"kind": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
         lambda: keras.optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
        ("adamw_keras", {"kind": "adamw", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                         "weight_decay": 0.1},
         lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1, beta_1=0.9, beta_2=0.999,
                                        epsilon=1e-7)),
        ("rmsprop_keras", {"kind": "rmsprop", "lr": 0.01, "rho": 0.9, "eps": 1e-7, "momentum": 0.0},
         lambda: keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.0, epsilon=1e-7)),
        ("adagrad_keras", {"kind": "adagrad", "lr": 0.1, "initial_accumulator": 0.1, "eps": 1e-7},
         lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-7)),
    ]
    cases = []
    for name, hparams, make in specs:
        var = tf.Variable(w0)
        opt = make()
        after = []
        for g in steps:
            opt.apply_gradients([(tf.constant(g), var)])
            after.append(flat(var.numpy()))
        cases.append({"name": name, "op": "optimizer", "hparams": hparams, "w0": flat(w0),
                      "grads": [flat(g) for g in steps], "w_after_each_step": after})
    return cases


def inverse_time_case():
    lr0, decay = 0.01, 0.001
    schedule = keras.optimizers.schedules.InverseTimeDecay(lr0, decay_steps=1, decay_rate=decay)
    steps = [0, 1, 10, 1000, 60000]
    return {"name": "inverse_time_decay", "op": "lr_schedule",
            "hparams": {"kind": "inverse_time", "lr0": lr0, "decay": decay}, "steps": steps,
            "lr": [float(schedule(s).numpy()) for s in steps]}


cases = [
    conv_case("conv3x3_valid", 2, 3, 7, 4, 3, 1, "valid"),
    conv_case("conv3x3_same_stride2", 2, 2, 8, 3, 3, 2, "same"),
    conv_case("conv5x5_same", 1, 3, 6, 2, 5, 1, "same"),
    pool_case("maxpool2_valid", "maxpool2d", 2, 3, 6, 2, 2, "valid"),
    pool_case("maxpool3_s2_same", "maxpool2d", 1, 2, 7, 3, 2, "same"),
    pool_case("avgpool2_valid", "avgpool2d", 2, 2, 6, 2, 2, "valid"),
    dense_case(),
    batchnorm_case(),
    softmax_ce_case(),
    *optimizer_cases(),
    inverse_time_case(),
]
fixture = {
    "source": f"tensorflow {tf.__version__} (keras {keras.__version__}), bench/tf_reference.py",
    "layout": "NCHW activations; conv kernels (out,in,kh,kw); dense kernels (in,out); "
              "dy is the upstream gradient",
    "cases": cases,
}
os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(fixture, f, indent=None, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to {OUT} ({fixture['source']})")
