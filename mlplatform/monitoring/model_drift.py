"""Drift of one monitored model version, Dagster-free: the figures drift_report records and the
retrain decision the drift sensor takes on them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlplatform import config
from mlplatform.features import make_labels
from mlplatform.monitoring.drift import DriftSummary, ScoreDrift, evidently_drift, score_drift
from mlplatform.monitoring.psi import ReferenceBins, psi, psi_drift_share
from mlplatform.promotion import awaiting_review
from mlplatform.training import DateWindow, predict_up_proba


def recent_rows(features: pd.DataFrame, business_days: int) -> pd.DataFrame:
    dates = features.index.get_level_values("date")
    recent = np.sort(dates.unique())[-business_days:]
    return features[dates.isin(recent)]


def training_rows(features: pd.DataFrame, window: DateWindow) -> pd.DataFrame:
    """The rows a version trained on (its `training_window`)."""
    return features[window.contains(features.index.get_level_values("date"))]


@dataclass(frozen=True)
class FeatureDrift:
    """Fast PSI of every feature of `current` against a version's stored reference bins."""

    psi: pd.Series
    share: float  # the share of features at or above the PSI threshold: what retrains
    n_drifted: int
    window_end: str  # the last date of `current`, ISO

    @classmethod
    def of(cls, bins: ReferenceBins, current: pd.DataFrame) -> FeatureDrift:
        values = psi(bins, current)
        share, drifted = psi_drift_share(values, config.DRIFT.psi_threshold)
        end = current.index.get_level_values("date").max().date().isoformat()
        return cls(values, share, drifted, end)


@dataclass(frozen=True)
class MonitoredModel:
    """The version drift is measured against, as the registry holds it."""

    alias: str
    version: str
    created_at: float  # registration time, s since the epoch
    tags: Mapping[str, str]

    @property
    def key(self) -> str:
        return f"{self.alias}:{self.version}"

    @property
    def training_window(self) -> DateWindow:
        """The rows the version trained on (its `training_window` tag, a DateWindow as JSON)."""
        return DateWindow.from_dict(json.loads(self.tags["training_window"]))


@dataclass(frozen=True)
class DriftWindow:
    """drift_report's settings: the recent window compared and the Evidently report's sample."""

    recent_business_days: int
    sample_rows: int
    horizon: int  # of the labels whose drift is measured


@dataclass(frozen=True)
class DriftReport:
    """The drift_report asset's value: the headline figures of one drift measurement."""

    model_version: str
    alias: str
    drift_share: float  # fast PSI share: what the drift sensor acts on
    evidently_drift_share: float
    dataset_drift: bool
    fast_psi: dict[str, float]  # feature -> PSI against the stored reference bins
    score_psi: float
    html: Path


@dataclass(frozen=True)
class ModelDrift:
    """What drift_report records: fast feature PSI (the sensor's figure), prediction-score and
    label PSI, and the Evidently report (written to `html_path`)."""

    model: MonitoredModel
    features: FeatureDrift
    report: DriftSummary
    score: ScoreDrift
    label_psi: float  # NaN: no realised label yet, or no label reference stored
    label_up_rate: float
    reference_label_up_rate: float
    window: str  # first → last date compared
    current_rows: int
    html_path: Path

    def top_features(self, n: int = 10) -> pd.DataFrame:
        fast = self.features.psi
        report = self.report.per_feature.set_index("feature")["psi"].reindex(fast.index)
        return (
            pd.DataFrame({"psi": fast, "report_psi": report})
            .rename_axis("feature")
            .sort_values("psi", ascending=False)
            .head(n)
        )

    def value(self) -> DriftReport:
        return DriftReport(
            model_version=self.model.version,
            alias=self.model.alias,
            drift_share=self.features.share,
            evidently_drift_share=self.report.share_drifted,
            dataset_drift=bool(self.report.dataset_drift),
            fast_psi={str(k): float(v) for k, v in self.features.psi.items()},
            score_psi=float(self.score.psi),
            html=self.html_path,
        )


def _label_drift(
    prices: pd.DataFrame, current: pd.DataFrame, reference: Mapping[str, Any], horizon: int
) -> tuple[float, float]:
    """(label PSI, recent up-rate) of the realised labels: only rows whose next bar has arrived."""
    labels = make_labels(prices, horizon=horizon).reindex(current.index).dropna()
    if not len(labels):
        return float("nan"), float("nan")
    if "label" not in reference:
        return float("nan"), float(labels.mean())
    drift = score_drift(
        ReferenceBins.from_dict(reference["label"]),
        labels.astype("float64").rename("label"),
        name="label",
    )
    return float(drift.psi), float(labels.mean())


def measure_drift(
    features: pd.DataFrame,
    prices: pd.DataFrame,
    model: MonitoredModel,
    reference: Mapping[str, Any],
    booster: lgb.Booster,
    *,
    settings: DriftWindow,
    reports_dir: Path,
) -> ModelDrift:
    """The recent window against what `model` trained on (`reference`: the bins stored with it)."""
    current = recent_rows(features, settings.recent_business_days)
    first, last = current.index[0][0], current.index[-1][0]
    html_path = reports_dir / f"drift_v{model.version}_{last:%Y-%m-%d}.html"
    report = evidently_drift(
        training_rows(features, model.training_window),
        current,
        psi_threshold=config.DRIFT.psi_threshold,
        drift_share=config.DRIFT.drift_share,
        sample_rows=settings.sample_rows,
        html_path=html_path,
    )
    scores = pd.Series(predict_up_proba(booster, current), name="score")
    label_psi, up_rate = _label_drift(prices, current, reference, settings.horizon)
    return ModelDrift(
        model=model,
        features=FeatureDrift.of(ReferenceBins.from_dict(reference["features"]), current),
        report=report,
        score=score_drift(ReferenceBins.from_dict(reference["score"]), scores),
        label_psi=label_psi,
        label_up_rate=up_rate,
        reference_label_up_rate=float(reference.get("label_up_rate", float("nan"))),
        window=f"{first:%Y-%m-%d} → {last:%Y-%m-%d}",
        current_rows=len(current),
        html_path=html_path,
    )


@dataclass(frozen=True)
class RetrainVerdict:
    retrain: bool
    message: str  # the figures, and why not when no retrain


def retrain_verdict(
    drift: FeatureDrift, model: MonitoredModel, cursor: Mapping[str, Any]
) -> RetrainVerdict:
    """Retrain on this drift or not, given what the sensor asked for before (its cursor's
    `requested_for` and `last_request_ts`)."""
    threshold = config.DRIFT.drift_share
    top = ", ".join(
        f"{k}={v:.2f}" for k, v in drift.psi.sort_values(ascending=False).head(3).items()
    )
    figures = (
        f"drift share {drift.share:.0%} ({drift.n_drifted}/{len(drift.psi)} features with PSI ≥ "
        f"{config.DRIFT.psi_threshold}) vs {model.alias} v{model.version} up to "
        f"{drift.window_end}; top: {top}"
    )
    if drift.share < threshold:
        return RetrainVerdict(False, f"{figures}; below the retrain threshold {threshold:.0%}")
    last_request = cursor.get("last_request_ts")
    if awaiting_review(
        cursor.get("requested_for"),
        last_request,
        monitored=model.key,
        monitored_is_staging=model.alias == config.STAGING_ALIAS,
        monitored_created_at=model.created_at,
    ):
        # The retrain this drift asked for gives a new staging version, but drift is measured
        # against the monitored model until a person promotes (or rolls back): asking again
        # every day would only stack retrains of the same data.
        return RetrainVerdict(
            False,
            f"{figures}; a retrain was already requested against {model.alias} "
            f"v{model.version}: review and promote the new staging version to re-arm",
        )
    if last_request is not None and time.time() - last_request < config.DRIFT.cooldown_hours * 3600:
        return RetrainVerdict(
            False,
            f"{figures}; in cooldown ({config.DRIFT.cooldown_hours} h since the last drift "
            "retrain)",
        )
    return RetrainVerdict(True, figures)
