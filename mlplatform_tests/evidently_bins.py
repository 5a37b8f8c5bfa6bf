"""Evidently 0.7's own PSI bins, to check that `psi` reproduces Evidently's numbers on them.

Evidently bins each (reference, current) pair afresh (equal-width Sturges bins over the combined
range), so the platform never stores them: only the tests and benchmarks/bench_drift.py do this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.monitoring.psi import (
    FeatureBins,
    ReferenceBins,
    _bin_counts,
    _categorical_bins,
    _feature_arrays,
    _few_distinct,
)


def evidently_bins(reference: pd.DataFrame, current: pd.DataFrame) -> ReferenceBins:
    """Evidently 0.7's bins for this (reference, current) pair (see mlplatform.monitoring.psi)."""
    ref_arrays = _feature_arrays(reference, what="reference")
    cur_arrays = _feature_arrays(current, what="current", names=list(ref_arrays))
    feats = {name: _feature_bins(ref, cur_arrays[name]) for name, ref in ref_arrays.items()}
    return ReferenceBins(features=feats, rule="evidently", n_bins=0)


def sturges_edges(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """np.histogram_bin_edges(concat(ref, cur), bins="sturges") without the concatenation:
    the same arithmetic, in the same dtypes, as numpy's _get_bin_edges."""
    dtype = np.result_type(ref.dtype, cur.dtype)
    first = np.minimum(ref.min(), cur.min()).astype(dtype)
    last = np.maximum(ref.max(), cur.max()).astype(dtype)
    if not (np.isfinite(first) and np.isfinite(last)):
        raise ValueError(f"autodetected range of [{first}, {last}] is not finite")
    size = ref.size + cur.size
    width = np.subtract(last, first) / (np.log2(size) + 1.0)
    if first == last:
        first, last = first - 0.5, last + 0.5
    n_equal = int(np.ceil(np.subtract(last, first) / width)) if width else 1
    bin_type = np.result_type(first, last, np.empty(0, dtype=dtype))
    if np.issubdtype(bin_type, np.integer):
        bin_type = np.result_type(bin_type, float)
    return np.linspace(first, last, n_equal + 1, endpoint=True, dtype=bin_type)


def _feature_bins(ref: np.ndarray, cur: np.ndarray) -> FeatureBins:
    if _few_distinct(ref):
        return _categorical_bins(ref)
    full = sturges_edges(ref, cur)
    inner = full[1:-1]  # the outer edges are the combined min/max: every value lies inside
    counts = _bin_counts(ref, inner)
    return FeatureBins("numeric", inner.astype(np.float64), counts)
