"""Evidently drift report parsing (on real Evidently output) and score / label drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplatform.monitoring import (
    DriftSummary,
    ReferenceBins,
    evidently_drift,
    psi,
    score_drift,
)
from mlplatform_tests.evidently_bins import evidently_bins


def _features(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2024-01-01", periods=n // 4), ["A", "B", "C", "D"]],
        names=["date", "ticker"],
    )
    return pd.DataFrame({f"f{i}": rng.normal(size=len(idx)) for i in range(6)}, index=idx).astype(
        "float32"
    )


@pytest.fixture(scope="module")
def shifted_summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[DriftSummary, Path, tuple]:
    ref, cur = _features(0), _features(1)
    cur["f0"] += 1.0
    cur["f1"] *= 3.0
    html = tmp_path_factory.mktemp("reports") / "sub" / "drift.html"
    summary = evidently_drift(ref, cur, psi_threshold=0.2, drift_share=0.3, html_path=html)
    return summary, html, (ref, cur)


def test_evidently_drift_summary_is_sane(shifted_summary: tuple) -> None:
    summary, _, _ = shifted_summary
    assert summary.n_features == 6
    assert summary.n_drifted == 2 and summary.share_drifted == pytest.approx(2 / 6)
    assert summary.dataset_drift is True
    pf = summary.per_feature
    assert list(pf.columns) == ["feature", "psi", "drifted"]
    assert set(pf.loc[pf["drifted"], "feature"]) == {"f0", "f1"}
    assert pf["psi"].is_monotonic_decreasing
    assert summary.reference_rows == summary.current_rows == 2000
    assert summary.to_dict()["n_drifted"] == 2


def test_evidently_drift_writes_html_atomically(shifted_summary: tuple) -> None:
    summary, html, _ = shifted_summary
    assert summary.html_path == html and html.stat().st_size > 10_000
    assert "<html" in html.read_text(encoding="utf-8")[:2000].lower()
    assert [p.name for p in html.parent.iterdir()] == ["drift.html"]  # no temp left behind


def test_report_psi_equals_fast_psi_on_evidently_bins(shifted_summary: tuple) -> None:
    summary, _, (ref, cur) = shifted_summary  # 2000 rows <= sample_rows: no sampling
    fast = psi(evidently_bins(ref, cur), cur)
    report = summary.per_feature.set_index("feature")["psi"]
    np.testing.assert_allclose(report[fast.index].to_numpy(), fast.to_numpy(), atol=1e-6)


def test_evidently_drift_no_drift_and_sampling() -> None:
    ref, cur = _features(2, n=1200), _features(3, n=1200)
    summary = evidently_drift(ref, cur, sample_rows=800, seed=5)
    assert summary.reference_rows == summary.current_rows == 800
    assert summary.n_drifted == 0 and summary.dataset_drift is False
    assert summary.html_path is None
    assert (summary.per_feature["psi"] < 0.1).all()


def test_evidently_drift_rejects_nan() -> None:
    ref, cur = _features(0, n=200), _features(1, n=200)
    cur.iloc[5, 2] = np.nan
    with pytest.raises(ValueError, match="current feature f2"):
        evidently_drift(ref, cur)


def test_score_drift_scores_and_labels() -> None:
    rng = np.random.default_rng(0)
    ref_scores = rng.beta(2, 2, 5000)
    stored = ReferenceBins.from_series(pd.Series(ref_scores, name="p_up"))
    stable = score_drift(stored, rng.beta(2, 2, 2000))
    moved = score_drift(ref_scores, rng.beta(6, 2, 2000))
    assert not stable.drifted and stable.psi < 0.05
    assert moved.drifted and moved.psi > 0.2 and moved.reference.rule == "quantile"

    labels = pd.Series(rng.integers(0, 2, 4000).astype("int8"), name="label")
    same = score_drift(labels, rng.integers(0, 2, 1000).astype("int8"), name="label")
    skewed = score_drift(labels, (rng.uniform(size=1000) < 0.9).astype("int8"), name="label")
    assert same.reference.features["label"].kind == "categorical"
    assert same.psi < 0.02 and skewed.drifted
