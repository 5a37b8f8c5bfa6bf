"""Drift monitoring, Dagster-free: fast PSI against stored reference bins (the sensor) and the
Evidently report (the drift_report asset). Evidently is imported only when a report is run."""

from mlplatform.monitoring.drift import DriftSummary, ScoreDrift, evidently_drift, score_drift
from mlplatform.monitoring.psi import (
    FeatureBins,
    ReferenceBins,
    model_reference,
    psi,
    psi_drift_share,
    psi_from_proportions,
)

__all__ = [
    "DriftSummary",
    "FeatureBins",
    "ReferenceBins",
    "ScoreDrift",
    "evidently_drift",
    "model_reference",
    "psi",
    "psi_drift_share",
    "psi_from_proportions",
    "score_drift",
]
