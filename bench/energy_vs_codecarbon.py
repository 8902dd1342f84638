"""Our energy figure beside CodeCarbon's on the same run (BENCHMARKS.md, "Energy").

CodeCarbon's EmissionsTracker (process mode: this process and its children) wraps a
`modelsmith train` subprocess; modelsmith meters itself. Both report CPU and memory energy; on a
machine without readable RAPL counters both estimate the CPU's (CPU time × watts per busy
thread: CodeCarbon's 4 W default for a CPU it does not know, our table's or the same default).

    /tmp/peer/bin/python bench/energy_vs_codecarbon.py BIN [--data fashion-mnist] [--epochs 3]

Prints one JSON line.
"""

import argparse
import json
import logging
import subprocess
import sys
import tempfile

from codecarbon import OfflineEmissionsTracker


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as out:
        tracker = OfflineEmissionsTracker(
            country_iso_code="USA",
            tracking_mode="process",
            measure_power_secs=1,
            save_to_file=False,
            log_level="error",
            allow_multiple_runs=True,
        )
        tracker.start()
        run = subprocess.run(
            [a.binary, "train", "--data", a.data, "--epochs", str(a.epochs),
             "--out", out + "/model", "--json", "--quiet"],
            capture_output=True, text=True)
        tracker.stop()
        if run.returncode != 0:
            sys.exit("modelsmith train failed: " + run.stderr)
        ours = json.loads(run.stdout)["footprint"]
        cc = tracker.final_emissions_data
    kwh = 3.6e6
    print(json.dumps({
        "codecarbon": {
            "cpu_joules": cc.cpu_energy * kwh,
            "ram_joules": cc.ram_energy * kwh,
            "joules": cc.energy_consumed * kwh,
            "cpu_watts": cc.cpu_power,
            "ram_watts": cc.ram_power,
            "seconds": cc.duration,
            "cpu_model": cc.cpu_model,
        },
        "ours": {
            "cpu_joules": ours["cpu_joules"],
            "memory_joules": ours["memory_joules"],
            "joules": ours["joules"],
            "cpu_seconds": ours["cpu_seconds"],
            "seconds": ours["seconds"],
            "method": ours["method"],
            "source": ours["source"],
        },
        "cpu_ratio_ours_over_codecarbon": ours["cpu_joules"] / max(cc.cpu_energy * kwh, 1e-12),
    }))


if __name__ == "__main__":
    main()
