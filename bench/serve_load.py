"""Load on a KServe v2 server through NVIDIA's tritonclient, the same script for every server:
CLIENTS threads, each with its own client, send infer requests of BATCH digits back to back for
SECONDS; prints one JSON line per (target, protocol, batch) with requests/s, examples/s and
latency percentiles. Binary tensors over HTTP (tritonclient's default) and gRPC.

Usage: serve_load.py NAME HTTP_URL GRPC_URL [--clients 32] [--seconds 10] [--batches 1,32]
"""
import argparse
import json
import threading
import time

import numpy as np
import tritonclient.grpc as grpc
import tritonclient.http as http


def run(module, url, batch, clients, seconds):
    data = np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32)
    latencies, errors, lock = [], [0], threading.Lock()
    start_at = time.perf_counter() + 1.0
    stop_at = start_at + seconds

    def worker():
        client = module.InferenceServerClient(url)
        tensor = module.InferInput("input", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        mine, failed = [], 0
        # Warm-up until the common start, then measure.
        while time.perf_counter() < start_at:
            client.infer("digits", [tensor])
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            try:
                client.infer("digits", [tensor])
                mine.append(time.perf_counter() - t0)
            except Exception:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = np.array(latencies) * 1000
    return {
        "requests_per_second": round(len(lat) / seconds, 1),
        "examples_per_second": round(len(lat) * batch / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "errors": errors[0],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("http_url")
    p.add_argument("grpc_url")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--batches", default="1,32")
    a = p.parse_args()
    for batch in [int(b) for b in a.batches.split(",")]:
        for protocol, module, url in [("http-binary", http, a.http_url), ("grpc", grpc, a.grpc_url)]:
            r = run(module, url, batch, a.clients, a.seconds)
            print(json.dumps({"server": a.name, "protocol": protocol, "batch": batch,
                              "clients": a.clients, **r}), flush=True)


if __name__ == "__main__":
    main()
