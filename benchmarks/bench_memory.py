"""Benchmark: what touching memory costs on this machine, memory freed just now against memory
freed a while ago.

A virtual machine whose host takes back the memory its guest frees (virtio-balloon free page
reporting, as on this project's microVMs) makes every later first touch of that memory fault it
back in from the host. Each retrain step frees and allocates arrays of every bar, so on such a
machine part of bench_pipeline's "outside LightGBM/Optuna" seconds is the host's, not the
platform's. This script measures it: allocating and filling --gib GiB right after the same amount
was freed (the baseline: pages the process or the kernel still holds), against the same after
--idle seconds with that memory free. Medians of --repeat runs, interleaved.

    .venv/bin/python benchmarks/bench_memory.py
    .venv/bin/python benchmarks/bench_memory.py --gib 0.5 --idle 1 2 5 --repeat 3

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def fill_seconds(n_bytes: int) -> float:
    """Seconds to allocate `n_bytes` of float64 and write every element once."""
    started = time.perf_counter()
    block = np.ones(n_bytes // 8)
    elapsed = time.perf_counter() - started
    del block
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="memory filled per measurement")
    parser.add_argument("--idle", type=float, nargs="+", default=[2.0, 10.0], help="seconds")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n_bytes = int(args.gib * 2**30)
    fill_seconds(n_bytes)  # the process's first touch, whatever its history: not measured
    reused: list[float] = []
    after: dict[float, list[float]] = {idle: [] for idle in args.idle}
    for _ in range(args.repeat):
        for idle in args.idle:
            fill_seconds(n_bytes)
            reused.append(fill_seconds(n_bytes) / args.gib)  # freed a moment ago
            time.sleep(idle)
            after[idle].append(fill_seconds(n_bytes) / args.gib)
    baseline = statistics.median(reused)
    print(f"{'memory filled':40} {'s per GiB':>10} {'vs just freed':>14}")
    print(f"{'freed a moment ago (baseline)':40} {baseline:10.3f} {1.0:13.1f}x")
    for idle, values in after.items():
        figure = statistics.median(values)
        print(f"{f'freed {idle:g} s ago':40} {figure:10.3f} {figure / baseline:13.1f}x")
    print(
        json.dumps(
            {
                "benchmark": "memory",
                "gib": args.gib,
                "repeat": args.repeat,
                "just_freed_s_per_gib": round(baseline, 4),
                "after_idle_s_per_gib": {
                    str(idle): round(statistics.median(v), 4) for idle, v in after.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
