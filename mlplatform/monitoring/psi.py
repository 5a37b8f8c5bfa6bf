"""Population Stability Index against reference bins stored with each model version.

The drift sensor runs every few minutes on fresh feature rows, so PSI here is vectorised numpy
(one searchsorted + bincount per column) against bins computed once from the training features
and kept as a JSON artifact. The zero-proportion (epsilon) rule and the PSI formula mirror
Evidently 0.7's `psi_stat_test` exactly (evidently/legacy/calculations/stattests/{psi,utils}.py,
`get_binned_data`), so on the same data and the same bins the two agree to float rounding.

Evidently's binning, however, cannot be stored ahead of time: for a numerical column with more
than 20 distinct reference values it uses `np.histogram_bin_edges(reference + current,
bins="sturges")`, i.e. equal-width bins over the *combined* range, and it bins columns with at
most 20 distinct values by value. Two rules are therefore offered:

- `ReferenceBins.from_frame` (rule "quantile", what the sensor stores): equal-frequency bins from
  reference quantiles (robust to heavy tails, independent of the current data), outer edges
  -inf/+inf, empty reference bins merged away; discrete columns binned by value as Evidently does.
- rule "evidently": Evidently's own bins for a given (reference, current) pair, which only the
  tests and benchmarks/bench_drift.py build (mlplatform_tests/evidently_bins.py) to show that
  `psi` on them reproduces Evidently's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlplatform import config

# Evidently's get_binned_data bins a numerical column by value when the reference has at most
# this many distinct values (a constant, not a platform threshold: it mirrors Evidently).
CATEGORICAL_MAX_UNIQUE = 20
# Evidently's zero-fill: a zero share becomes min(non-zero share) / 1e6 when that minimum is at
# most 1e-4, else 1e-4, separately for reference and current.
_EPS_SMALL_SHARE = 1e-4
_EPS_DIVISOR = 10**6
_COMPARE_MAX_EDGES = 48  # above this, bin by binary search (see _bin_counts)
_TRANSPOSE_CHUNK_ROWS = 4096

BinKind = Literal["numeric", "categorical"]
BinRule = Literal["quantile", "evidently"]
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeatureBins:
    """Bins of one feature.

    numeric: `edges` are the inner edges, ascending; bin i is [edges[i-1], edges[i]) with the
    outer edges -inf/+inf, so there are len(edges) + 1 bins and every value falls in one.
    categorical: `edges` are the distinct reference values, ascending, one bin each; a current
    value not seen in the reference gets a bin of its own at PSI time (Evidently's union of keys).
    `counts` are reference rows per bin.
    """

    kind: BinKind
    edges: np.ndarray
    counts: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    @property
    def proportions(self) -> np.ndarray:
        return self.counts / self.n_rows

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureBins:
        kind = d["kind"]
        edges = np.asarray(d["edges"], dtype=np.float64)
        counts = np.asarray(d["counts"], dtype=np.int64)
        expected = len(edges) + 1 if kind == "numeric" else len(edges)
        if kind not in ("numeric", "categorical") or len(counts) != expected:
            raise ValueError(
                f"malformed feature bins: kind {kind!r}, {len(edges)} edges, {len(counts)} counts"
            )
        return cls(kind=kind, edges=edges, counts=counts)

    def current_proportions(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reference shares, current shares) over the union of bins, before zero-filling."""
        n_cur = len(values)
        ref = self.proportions
        edges = _edges_for(self.edges, values)
        if self.kind == "numeric":
            return ref, _bin_counts(values, edges) / n_cur
        cur = np.fromiter((np.count_nonzero(values == c) for c in edges), np.int64, len(edges))
        if cur.sum() == n_cur:
            return ref, cur / n_cur
        unseen = values[np.isin(values, edges, invert=True)]
        _, unseen_counts = np.unique(unseen, return_counts=True)
        ref = np.concatenate([ref, np.zeros(len(unseen_counts))])
        return ref, np.concatenate([cur, unseen_counts]) / n_cur


@dataclass(frozen=True)
class ReferenceBins:
    """Per-feature reference bins and counts; stored as JSON with each model version."""

    features: dict[str, FeatureBins]
    rule: BinRule = "quantile"
    n_bins: int = config.DRIFT.n_bins
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def n_rows(self) -> int:
        return next(iter(self.features.values())).n_rows if self.features else 0

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_frame(cls, X: pd.DataFrame, n_bins: int = config.DRIFT.n_bins) -> ReferenceBins:
        """Quantile bins per feature from the training (reference) features."""
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        arrays = _feature_arrays(X, what="reference")
        feats = {name: _quantile_bins(values, n_bins) for name, values in arrays.items()}
        return cls(features=feats, rule="quantile", n_bins=n_bins)

    @classmethod
    def from_series(
        cls,
        values: pd.Series | np.ndarray,
        n_bins: int = config.DRIFT.n_bins,
        name: str | None = None,
    ) -> ReferenceBins:
        """Bins of one 1-D distribution (prediction scores, labels)."""
        return cls.from_frame(_as_frame(values, name), n_bins=n_bins)

    # --- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: finite floats and ints only (the outer -inf/+inf edges are implicit)."""
        return {
            "schema_version": _SCHEMA_VERSION,
            "rule": self.rule,
            "n_bins": int(self.n_bins),
            "n_rows": self.n_rows,
            "meta": dict(self.meta),
            "features": {name: fb.to_dict() for name, fb in self.features.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceBins:
        version = d.get("schema_version")
        if version != _SCHEMA_VERSION:
            raise ValueError(f"unsupported reference bins schema_version {version!r}")
        feats = {name: FeatureBins.from_dict(fd) for name, fd in d["features"].items()}
        return cls(features=feats, rule=d["rule"], n_bins=int(d["n_bins"]), meta=dict(d["meta"]))


def psi(reference: ReferenceBins, current: pd.DataFrame | pd.Series) -> pd.Series:
    """PSI per reference feature (Series named "psi", indexed by feature), Evidently's formula.

    Extra columns in `current` are ignored; a missing feature, an empty frame or a NaN raises
    ValueError naming the feature.
    """
    if isinstance(current, pd.Series):
        current = _as_frame(current, reference.feature_names[0])
    arrays = _feature_arrays(current, what="current", names=reference.feature_names)
    out = np.empty(len(arrays), dtype=np.float64)
    for i, (name, values) in enumerate(arrays.items()):
        ref_p, cur_p = reference.features[name].current_proportions(values)
        out[i] = psi_from_proportions(ref_p, cur_p)
    return pd.Series(out, index=pd.Index(list(arrays), name="feature"), name="psi")


def psi_from_proportions(reference: np.ndarray, current: np.ndarray) -> float:
    """sum((r - c) * ln(r / c)) after Evidently's zero-fill of each side."""
    r = _fill_zeros(np.asarray(reference, dtype=np.float64))
    c = _fill_zeros(np.asarray(current, dtype=np.float64))
    return float(np.sum((r - c) * np.log(r / c)))


def psi_drift_share(
    psi_values: pd.Series, threshold: float = config.DRIFT.psi_threshold
) -> tuple[float, int]:
    """(share of features drifted, number drifted); drifted means PSI >= threshold (Evidently)."""
    if len(psi_values) == 0:
        return 0.0, 0
    n_drifted = int((np.asarray(psi_values, dtype=np.float64) >= threshold).sum())
    return n_drifted / len(psi_values), n_drifted


# --- internals ----------------------------------------------------------------------------------
def _fill_zeros(p: np.ndarray) -> np.ndarray:
    zero = p == 0
    if not zero.any():
        return p
    smallest = p[~zero].min()
    eps = smallest / _EPS_DIVISOR if smallest <= _EPS_SMALL_SHARE else _EPS_SMALL_SHARE
    return np.where(zero, eps, p)


def _edges_for(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Edges in the values' dtype when exact, so comparisons needn't upcast a whole column."""
    if values.dtype != edges.dtype and np.issubdtype(values.dtype, np.floating):
        narrowed = edges.astype(values.dtype)
        if np.array_equal(narrowed.astype(edges.dtype), edges):
            return narrowed
    return edges


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin [edges[i-1], edges[i]) with outer edges -inf/+inf (np.histogram's rule).

    A few full-column comparisons (count of values below each edge) run at memory speed on a
    contiguous column and beat a per-value binary search several times over; many edges fall
    back to searchsorted + bincount.
    """
    if len(edges) <= _COMPARE_MAX_EDGES:
        below = np.fromiter((np.count_nonzero(values < e) for e in edges), np.int64, len(edges))
        return np.diff(below, prepend=0, append=len(values))
    idx = np.searchsorted(edges, values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def _as_frame(values: pd.Series | np.ndarray, name: str | None) -> pd.DataFrame:
    if isinstance(values, pd.Series):
        label = name or (str(values.name) if values.name is not None else "score")
        return pd.DataFrame({label: values.to_numpy()})
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D distribution, got shape {arr.shape}")
    return pd.DataFrame({name or "score": arr})


def _feature_arrays(
    X: pd.DataFrame, *, what: str, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Column arrays (no copy for float columns), checked: present, numeric, non-empty, no NaN."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(X).__name__}")
    if names is None:
        names = [str(c) for c in X.columns]
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise ValueError(f"{what} features missing: {', '.join(missing)}")
    if not names:
        raise ValueError(f"{what} has no feature columns")
    if len(X) == 0:
        raise ValueError(f"{what} has no rows")
    out: dict[str, np.ndarray] = {}
    for name in names:
        dtype = X[name].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise ValueError(f"{what} feature {name}: dtype {dtype} is not numeric")
    for name, values in _contiguous_columns(X, names).items():
        if values.dtype == bool:
            values = values.astype(np.int8)
        if np.issubdtype(values.dtype, np.floating):
            n_nan = int(np.isnan(values).sum())
            if n_nan:
                raise ValueError(f"{what} feature {name}: {n_nan} NaN value(s) of {len(values)}")
        out[name] = values
    return out


def _contiguous_columns(X: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """Each feature as a contiguous 1-D array: a view when pandas already keeps it so (frames
    built column by column), else one cache-friendly chunked transpose of the whole block (a
    frame wrapped around a row-major 2-D array strides every column by the row width)."""
    cols = {name: X[name].to_numpy() for name in names}
    if all(v.flags.c_contiguous for v in cols.values()):
        return cols
    if len({v.dtype for v in cols.values()}) > 1:
        return {k: np.ascontiguousarray(v) for k, v in cols.items()}
    block = X[names].to_numpy()
    out = np.empty((block.shape[1], block.shape[0]), dtype=block.dtype)
    for start in range(0, block.shape[0], _TRANSPOSE_CHUNK_ROWS):
        stop = start + _TRANSPOSE_CHUNK_ROWS
        out[:, start:stop] = block[start:stop].T
    return dict(zip(names, out, strict=True))


def _few_distinct(values: np.ndarray) -> bool:
    """At most CATEGORICAL_MAX_UNIQUE distinct values (Evidently's nunique <= 20), cheaply:
    a continuous column is told apart by its first few thousand values."""
    if np.unique(values[:4096]).size > CATEGORICAL_MAX_UNIQUE:
        return False
    return np.unique(values).size <= CATEGORICAL_MAX_UNIQUE


def _categorical_bins(values: np.ndarray) -> FeatureBins:
    cats, counts = np.unique(values, return_counts=True)
    return FeatureBins("categorical", cats.astype(np.float64), counts.astype(np.int64))


def _quantile_bins(values: np.ndarray, n_bins: int) -> FeatureBins:
    if _few_distinct(values):
        return _categorical_bins(values)
    ordered = np.sort(values)
    n = len(ordered)
    # np.quantile(method="lower") from the sorted column: the edges are data values, exact in
    # the data dtype (no upcast when binning), and the counts are binary searches
    positions = np.floor(np.linspace(0.0, 1.0, n_bins + 1)[1:-1] * (n - 1)).astype(np.intp)
    edges = np.unique(ordered[positions])
    below = np.searchsorted(ordered, edges, side="left")
    counts = np.diff(below, prepend=0, append=n).astype(np.int64)
    edges, counts = _merge_empty_bins(edges.astype(np.float64), counts)
    return FeatureBins("numeric", edges, counts)


def _merge_empty_bins(edges: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop edges until no reference bin is empty (ties can leave one empty, e.g. below a
    mass point at the minimum); an empty reference bin would only measure the epsilon."""
    e, c = list(edges), list(counts)
    while len(c) > 1 and 0 in c:
        i = c.index(0)
        j = i - 1 if i > 0 else 0  # edge j separates bins j and j+1
        c[j] += c.pop(j + 1)
        e.pop(j)
    return np.asarray(e, dtype=np.float64), np.asarray(c, dtype=np.int64)


def model_reference(
    X_train: pd.DataFrame, y_train: pd.Series, scores: pd.Series, n_bins: int
) -> dict[str, Any]:
    """What drift is measured against, stored with a model version: the training rows' feature
    and label bins, and out-of-sample scores (live predictions look like those, not like the
    more confident scores on training rows)."""
    return {
        "features": ReferenceBins.from_frame(X_train, n_bins=n_bins).to_dict(),
        "score": ReferenceBins.from_series(scores.rename("score"), n_bins=n_bins).to_dict(),
        "label": ReferenceBins.from_series(y_train.astype("float64").rename("label")).to_dict(),
        "label_up_rate": float(y_train.mean()),
    }
