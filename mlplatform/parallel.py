"""The cores this process may use, and ranges cut into blocks of bounded size."""

from __future__ import annotations

import itertools
import os

import numpy as np


def cores() -> int:
    """CPUs this process may run on: its affinity where the OS has one, else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def blocks(n: int, max_size: int) -> list[slice]:
    """range(n) cut into as few contiguous slices as keep each at most `max_size` long (the
    features' ticker blocks, which bound the memory of one pass)."""
    pieces = max(-(-n // max_size), 1)
    edges = np.linspace(0, n, pieces + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
