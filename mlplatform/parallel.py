"""Independent pieces of array work on one thread per core.

numpy ufuncs, sorts and takes, pandas' rolling kernels, scipy's lfilter and numpy's random fills
release the GIL on arrays of this size, so threads share the data with no copy or pickling: on two
cores compute_features runs 1.9x faster than on one (benchmarks/bench_features.py, 500 tickers).
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

import joblib
import numpy as np

T = TypeVar("T")


def cores() -> int:
    """CPUs this process may use: its affinity, capped by the container's CPU quota (cgroup v1 or
    v2, e.g. a Kubernetes CPU limit), so a pod limited to 2 CPUs on a 64-core node runs 2 threads
    instead of 64 throttled ones. joblib (loky) reads the quota, rounded up to whole CPUs."""
    return joblib.cpu_count()


def blocks(n: int, max_size: int | None = None) -> list[slice]:
    """range(n) cut into one contiguous slice per core (fewer when n is smaller), or into more
    when a slice would be longer than `max_size`."""
    pieces = max(min(cores(), n), 1)
    if max_size is not None:
        pieces = max(pieces, -(-n // max_size))
    edges = np.linspace(0, n, pieces + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def in_threads(work: Callable[[T], None], items: Sequence[T]) -> None:
    """work(item) for every item, one thread per core.

    Each piece runs in a copy of the caller's context, so numpy's error state (np.errstate)
    applies in the threads as it would in the caller. The first failure cancels the pieces not
    yet started and is raised here.
    """
    threads = min(cores(), len(items))
    if threads < 2:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(threads) as pool:
        pieces = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
        done, _ = wait(pieces, return_when=FIRST_EXCEPTION)
        failed = [piece for piece in pieces if piece in done and piece.exception() is not None]
        if failed:
            pool.shutdown(cancel_futures=True)
            failed[0].result()  # raises its exception
