"""The PyTorch peer of `cuda_seed_step`: the seed CNN trained eagerly on Fashion-MNIST resident
on the GPU, same steps as ours (a shuffled order per epoch, batches indexed on the device, SGD
lr 0.01 with Keras's 1e-6 decay and momentum 0.9, the loss read every 50 steps).

    python3 bench/torch_seed.py --data DIR --batches 32,128,512,2048 --seconds 4

DIR holds the IDX files (raw or .gz). Prints one JSON line per batch size. PyTorch's defaults
are kept (cuDNN convolutions may use TF32, matmuls do not), as a user would run it.
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn


def read_idx(path, header):
    for candidate in (path + ".gz", path):
        if os.path.exists(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                return np.frombuffer(f.read()[header:], dtype=np.uint8)
    raise SystemExit(f"{path}(.gz) not found")


def seed_cnn():
    # Keras's seed CNN: Conv(32,3x3,relu) MaxPool2 Conv(64,3x3,relu) MaxPool2 Flatten
    # Dense(64,relu) Dense(10).
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def run(x, y, batch, seconds, seed):
    torch.manual_seed(seed)
    model = seed_cnn().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + 1e-6 * t))
    loss_fn = nn.CrossEntropyLoss()
    n = x.shape[0]
    steps_per_epoch = n // batch
    step, images, warmup = 0, 0, 20
    timed_from = None
    while True:
        order = torch.randperm(n, device="cuda")
        for b in range(steps_per_epoch):
            if step == warmup:
                torch.cuda.synchronize()
                timed_from = (time.perf_counter(), images)
            idx = order[b * batch:(b + 1) * batch]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            images += batch
            if step % 50 == 0:
                value = loss.item()  # waits for the GPU, as our loss read does
                assert np.isfinite(value), f"diverged at step {step}"
                if timed_from is not None:
                    t = time.perf_counter() - timed_from[0]
                    if t >= seconds:
                        return (images - timed_from[1]) / t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--batches", default="32,128,512,2048")
    p.add_argument("--seconds", type=float, default=4.0)
    a = p.parse_args()
    images = read_idx(os.path.join(a.data, "train-images-idx3-ubyte"), 16)
    labels = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte"), 8)
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28).div_(255.0).cuda()
    y = torch.tensor(labels.astype(np.int64)).cuda()
    for batch in [int(b) for b in a.batches.split(",")]:
        ips = run(x, y, batch, a.seconds, 1)
        print(json.dumps({
            "engine": "pytorch", "version": torch.__version__, "batch": batch, "trials": 1,
            "images_per_second": round(ips),
        }), flush=True)


if __name__ == "__main__":
    main()
