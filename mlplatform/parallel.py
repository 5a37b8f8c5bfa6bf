"""The cores this process may use, and ranges cut into blocks of bounded size."""

from __future__ import annotations

import itertools

import joblib
import numpy as np


def cores() -> int:
    """CPUs this process may use: its affinity, capped by the container's CPU quota (cgroup v1 or
    v2, e.g. a Kubernetes CPU limit), so a pod limited to 2 CPUs on a 64-core node runs 2 threads
    instead of 64 throttled ones. joblib (loky) reads the quota, rounded up to whole CPUs."""
    return joblib.cpu_count()


def blocks(n: int, max_size: int) -> list[slice]:
    """range(n) cut into as few contiguous slices as keep each at most `max_size` long (the
    features' ticker blocks, which bound the memory of one pass)."""
    pieces = max(-(-n // max_size), 1)
    edges = np.linspace(0, n, pieces + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
