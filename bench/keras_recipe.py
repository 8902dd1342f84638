# Peer for the seed *recipe* (not just the CNN): Keras trains the seed CNN with SGD lr 0.01,
# momentum 0.9, legacy decay 1e-6 (as InverseTimeDecay per step), batch 32, at most 20 epochs,
# EarlyStopping(monitor="val_loss", patience=5) on a 10% validation split — what
# `modelsmith train --config examples/seed-fashion.toml` does. Prints one line.
# Run: /tmp/peer/bin/python bench/keras_recipe.py /usr/share/datasets/fashion-mnist
import gzip, os, sys, time
import numpy as np
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from tensorflow.keras import callbacks, layers, models, optimizers

folder = sys.argv[1]

def idx(name, offset):
    return np.frombuffer(gzip.open(os.path.join(folder, name)).read(), np.uint8, offset=offset)

x_train = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
y_train = idx("train-labels-idx1-ubyte.gz", 8)
x_test = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
y_test = idx("t10k-labels-idx1-ubyte.gz", 8)
# Keras's validation_split takes the last 10% unshuffled; shuffle once first so it is a fair sample.
order = np.random.default_rng(0).permutation(len(x_train))
x_train, y_train = x_train[order], y_train[order]
model = models.Sequential([
    layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
    layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
lr = optimizers.schedules.InverseTimeDecay(0.01, decay_steps=1, decay_rate=1e-6)
model.compile(optimizer=optimizers.SGD(learning_rate=lr, momentum=0.9),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
start = time.time()
history = model.fit(x_train, y_train, epochs=20, batch_size=32, validation_split=0.1, verbose=0,
                    callbacks=[callbacks.EarlyStopping(monitor="val_loss", patience=5)])
seconds = time.time() - start
_, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"keras recipe epochs_run={len(history.history['loss'])} seconds={seconds:.1f} test_accuracy={accuracy:.4f}")
