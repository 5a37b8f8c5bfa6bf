"""Feature drift report with Evidently 0.7, and prediction-score / label drift with fast PSI.

Evidently's DataDriftPreset computes each column's drift several times and takes ~16 s for
200k x 50, so the report runs on a bounded, seeded random sample of each side; the drift sensor
uses `psi.psi` against stored bins instead. Note the two PSI numbers differ on purpose: Evidently
bins by equal-width Sturges bins over reference + current, the sensor by reference quantiles
(see psi.py); both use Evidently's epsilon rule and the same threshold semantics (PSI >= t).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform import config
from mlplatform.monitoring.psi import ReferenceBins, _feature_arrays, psi, psi_drift_share

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class DriftSummary:
    """What the drift_report asset records; `per_feature` columns: feature, psi, drifted."""

    share_drifted: float
    n_drifted: int
    n_features: int
    dataset_drift: bool
    per_feature: pd.DataFrame
    html_path: Path | None
    psi_threshold: float
    drift_share: float
    reference_rows: int  # rows compared after sampling
    current_rows: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (for metadata and artifacts)."""
        return {
            "share_drifted": float(self.share_drifted),
            "n_drifted": int(self.n_drifted),
            "n_features": int(self.n_features),
            "dataset_drift": bool(self.dataset_drift),
            "psi_threshold": float(self.psi_threshold),
            "drift_share": float(self.drift_share),
            "reference_rows": int(self.reference_rows),
            "current_rows": int(self.current_rows),
            "html_path": str(self.html_path) if self.html_path else None,
            "per_feature": [
                {"feature": str(r.feature), "psi": float(r.psi), "drifted": bool(r.drifted)}
                for r in self.per_feature.itertuples(index=False)
            ],
        }


@dataclass(frozen=True)
class ScoreDrift:
    """PSI of one 1-D distribution (prediction scores or labels) against its reference."""

    name: str
    psi: float
    drifted: bool
    threshold: float
    reference: ReferenceBins
    current_rows: int


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    psi_threshold: float = config.DRIFT.psi_threshold,
    drift_share: float = config.DRIFT.drift_share,
    sample_rows: int = config.DRIFT.evidently_sample_rows,
    seed: int = 0,
    html_path: str | os.PathLike[str] | None = None,
) -> DriftSummary:
    """Evidently DataDriftPreset(method="psi") on at most `sample_rows` rows of each side.

    The reference's columns are the features (`current` must have them; extra columns are
    ignored); the index (e.g. date, ticker) is dropped. Writes the HTML report atomically when
    `html_path` is given.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    if sample_rows < 1:
        raise ValueError(f"sample_rows must be positive, got {sample_rows}")
    names = [str(c) for c in reference.columns]
    ref = _prepare(reference, names, "reference", sample_rows, seed)
    cur = _prepare(current, names, "current", sample_rows, seed + 1)

    report = Report(
        [DataDriftPreset(method="psi", threshold=psi_threshold, drift_share=drift_share)],
        include_tests=True,
    )
    with warnings.catch_warnings():
        # constant columns make Evidently's correlation widgets divide by a zero stddev
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(cur, ref)  # current first
        written = _save_html(snapshot, html_path) if html_path is not None else None

    per_feature, n_drifted, share, dataset_drift = _parse_snapshot(
        snapshot.dict(), names, psi_threshold, drift_share
    )
    return DriftSummary(
        share_drifted=share,
        n_drifted=n_drifted,
        n_features=len(names),
        dataset_drift=dataset_drift,
        per_feature=per_feature,
        html_path=written,
        psi_threshold=psi_threshold,
        drift_share=drift_share,
        reference_rows=len(ref),
        current_rows=len(cur),
    )


def score_drift(
    reference_scores: ReferenceBins | pd.Series | np.ndarray,
    current_scores: pd.Series | np.ndarray,
    *,
    threshold: float = config.DRIFT.psi_threshold,
    n_bins: int = config.DRIFT.n_bins,
    name: str = "score",
) -> ScoreDrift:
    """PSI of prediction scores (quantile bins) or labels (binned by value, as Evidently does).

    `reference_scores` may be the stored ReferenceBins of the scores (from_series) or the raw
    reference scores, binned here with `n_bins`.
    """
    if isinstance(reference_scores, ReferenceBins):
        bins = reference_scores
        if len(bins.features) != 1:
            raise ValueError(f"score reference bins must hold one column, got {bins.feature_names}")
    else:
        bins = ReferenceBins.from_series(reference_scores, n_bins=n_bins, name=name)
    column = bins.feature_names[0]
    values = np.asarray(current_scores)
    if values.ndim != 1:
        raise ValueError(f"current scores must be 1-D, got shape {values.shape}")
    value = float(psi(bins, pd.DataFrame({column: values})).iloc[0])
    return ScoreDrift(
        name=name,
        psi=value,
        drifted=value >= threshold,
        threshold=threshold,
        reference=bins,
        current_rows=len(values),
    )


# --- internals ----------------------------------------------------------------------------------
def _prepare(df: pd.DataFrame, names: list[str], what: str, n: int, seed: int) -> pd.DataFrame:
    """Checked feature columns, a seeded sample of at most n rows, RangeIndex, float dtypes
    (Evidently infers float columns as numerical; small-cardinality ints would turn categorical)."""
    arrays = _feature_arrays(df, what=what, names=names)
    n_rows = len(df)
    if n_rows > n:
        rows = np.sort(np.random.default_rng(seed).choice(n_rows, size=n, replace=False))
        arrays = {k: v[rows] for k, v in arrays.items()}
    return pd.DataFrame(
        {
            k: v if np.issubdtype(v.dtype, np.floating) else v.astype(np.float64)
            for k, v in arrays.items()
        }
    )


def _parse_snapshot(
    d: dict[str, Any], names: list[str], psi_threshold: float, drift_share: float
) -> tuple[pd.DataFrame, int, float, bool]:
    """Per-feature PSI from the ValueDrift metrics; count/share from DriftedColumnsCount;
    dataset drift from that metric's test (share < drift_share passes) when present."""
    scores: dict[str, float] = {}
    count: dict[str, Any] | None = None
    count_id: str | None = None
    for m in d.get("metrics", []):
        cfg = m.get("config", {})
        kind = cfg.get("type")
        if kind == _VALUE_DRIFT and cfg.get("column") in names:
            scores[cfg["column"]] = float(m["value"])
        elif kind == _DRIFTED_COUNT:
            count, count_id = m["value"], m.get("id")
    missing = [n for n in names if n not in scores]
    if missing:
        raise RuntimeError(f"Evidently report has no drift value for: {', '.join(missing)}")
    per_feature = pd.DataFrame({"feature": list(scores), "psi": list(scores.values())})
    per_feature["drifted"] = per_feature["psi"] >= psi_threshold
    per_feature = per_feature.sort_values(
        ["psi", "feature"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)

    share, n_drifted = psi_drift_share(per_feature["psi"], psi_threshold)
    if count is not None:
        n_drifted = round(float(count["count"]))
        share = float(count["share"])
    dataset_drift = share >= drift_share
    for t in d.get("tests", []):
        fingerprint = t.get("bound_test", {}).get("metric_fingerprint")
        if count_id is not None and fingerprint == count_id:
            dataset_drift = str(t.get("status")).rsplit(".", 1)[-1].upper() == "FAIL"
    return per_feature, n_drifted, share, dataset_drift


def _save_html(snapshot: Any, html_path: str | os.PathLike[str]) -> Path:
    """Temp file in the target folder, then rename: readers never see a half-written report.
    (Snapshot.save_html writes only when given a str path; a Path is silently ignored.)"""
    target = Path(html_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        snapshot.save_html(str(tmp))
        if Path(tmp).stat().st_size == 0:
            raise RuntimeError(f"Evidently wrote an empty HTML report for {target}")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
