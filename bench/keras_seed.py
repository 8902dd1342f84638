# Peer for training speed: the seed's Keras CNN (Conv32-Pool-Conv64-Pool-Dense64-Dense10, SGD lr
# 0.01 momentum 0.9, no validation split) on an MNIST-format IDX folder of gzip files, timed
# around model.fit only. Prints one line: seconds, images/s, test accuracy.
# Run (bench/seed_vs_keras.sh installs the peer): PYTHON bench/keras_seed.py DIR EPOCHS [BATCH]
import gzip, os, sys, time
import numpy as np
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from tensorflow.keras import layers, models, optimizers

folder, epochs = sys.argv[1], int(sys.argv[2])
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32


def idx(name, header_bytes):
    with gzip.open(os.path.join(folder, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header_bytes)


def images(name):
    return idx(name, 16).reshape(-1, 28, 28, 1).astype("float32") / 255


x_train, y_train = images("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz", 8)
x_test, y_test = images("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz", 8)
model = models.Sequential([
    layers.Input((28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=optimizers.SGD(learning_rate=0.01, momentum=0.9),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
start = time.time()
model.fit(x_train, y_train, epochs=epochs, batch_size=batch, verbose=0)
seconds = time.time() - start
_, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"keras epochs={epochs} batch={batch} seconds={seconds:.2f} "
      f"images_per_s={len(x_train) * epochs / seconds:.0f} test_accuracy={accuracy:.4f}")
