"""Group `monitoring`: how far the recent market has moved from what the model learned on."""

import json

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_mlflow.resources import MlFlow
from pydantic import Field

from mlplatform import config as settings
from mlplatform.features import make_labels
from mlplatform.monitoring import (
    ReferenceBins,
    evidently_drift,
    psi,
    psi_drift_share,
    score_drift,
)
from mlplatform.orchestration.errors import STORE_RETRY_POLICY, CheckedConfig, step_guard
from mlplatform.orchestration.metadata import run_link, table_markdown
from mlplatform.orchestration.resources import PlatformStores, ValidationScheme
from mlplatform.registry import download_reference, get_alias_version, load_booster
from mlplatform.training import DateWindow, predict_up_proba


class DriftConfig(CheckedConfig):
    recent_business_days: int = Field(
        default=settings.DRIFT.recent_business_days, ge=5, le=1260, description="Window compared."
    )
    sample_rows: int = Field(
        default=settings.DRIFT.evidently_sample_rows,
        ge=100,
        le=10_000_000,
        description="Evidently sample.",
    )


def monitored_version(stores: PlatformStores):
    """The production model's version; the staging model's when nothing is in production."""
    for alias in (settings.PRODUCTION_ALIAS, settings.STAGING_ALIAS):
        version = get_alias_version(stores.tracking_uri, stores.model_name, alias)
        if version is not None:
            return alias, version
    return None, None


def recent_rows(features: pd.DataFrame, business_days: int) -> pd.DataFrame:
    dates = features.index.get_level_values("date")
    recent = np.sort(dates.unique())[-business_days:]
    return features[dates.isin(recent)]


def training_rows(features: pd.DataFrame, training_window: str) -> pd.DataFrame:
    """The rows a version trained on (its `training_window` tag, a DateWindow as JSON)."""
    window = DateWindow.from_dict(json.loads(training_window))
    return features[window.contains(features.index.get_level_values("date"))]


@dg.asset(
    group_name="monitoring",
    deps=["staging_model"],  # not backtest_report: a failed gate must not stop monitoring
    kinds={"evidently", "mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="Evidently PSI drift of the recent features, prediction scores and labels "
    "against the monitored model's training reference.",
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    features: pd.DataFrame,
    raw_prices: pd.DataFrame,
    mlflow_tracking: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
) -> dg.Output[dict]:
    alias, version = monitored_version(stores)
    if version is None:
        # The daily refresh runs before the first model exists; say so rather than fail.
        context.log.info("no staging or production model yet: nothing to compare against")
        return dg.Output(
            {"model_version": None, "drift_share": None},
            metadata={"monitored_model": "none yet: materialize staging_model first"},
        )
    with step_guard(context):
        reference_doc = download_reference(stores.tracking_uri, stores.model_name, version.version)
        bins = ReferenceBins.from_dict(reference_doc["features"])
        current = recent_rows(features, config.recent_business_days)
        reference = training_rows(features, version.tags["training_window"])
        html_path = (
            stores.reports_path / f"drift_v{version.version}_{current.index[-1][0]:%Y-%m-%d}.html"
        )
        summary = evidently_drift(
            reference,
            current,
            psi_threshold=settings.DRIFT.psi_threshold,
            drift_share=settings.DRIFT.drift_share,
            sample_rows=config.sample_rows,
            html_path=html_path,
        )
        fast = psi(bins, current)
        fast_share, fast_drifted = psi_drift_share(fast, settings.DRIFT.psi_threshold)
        booster = load_booster(stores.tracking_uri, stores.model_name, version.version)
        scores = pd.Series(predict_up_proba(booster, current), name="score")
        score = score_drift(ReferenceBins.from_dict(reference_doc["score"]), scores)
        score_psi = float(score.psi)
        # Realised labels exist only for rows whose next bar has arrived.
        labels = make_labels(raw_prices, horizon=validation.horizon).reindex(current.index).dropna()
        label_up_rate = float(labels.mean()) if len(labels) else float("nan")
        label_psi = (
            float(
                score_drift(
                    ReferenceBins.from_dict(reference_doc["label"]),
                    labels.astype("float64").rename("label"),
                    name="label",
                ).psi
            )
            if len(labels) and "label" in reference_doc
            else float("nan")
        )
        run = mlflow_tracking.active_run()
        mlflow.log_artifact(str(html_path), artifact_path="drift")
        mlflow.log_metrics(
            {
                "drift_share": summary.share_drifted,
                "drift_fast_psi_share": fast_share,
                "drift_score_psi": score_psi,
                "drift_label_psi": label_psi,
            }
        )
    top = summary.per_feature.head(10).set_index("feature")
    return dg.Output(
        {
            "model_version": str(version.version),
            "alias": alias,
            "drift_share": summary.share_drifted,
            "dataset_drift": bool(summary.dataset_drift),
            "fast_psi": {k: float(v) for k, v in fast.items()},
            "score_psi": score_psi,
            "html": str(html_path),
        },
        metadata={
            "monitored_model": f"{alias} v{version.version}",
            "drift_share": float(summary.share_drifted),
            "drifted_features": int(summary.n_drifted),
            "features": int(summary.n_features),
            "dataset_drift": bool(summary.dataset_drift),
            "fast_psi_drift_share": float(fast_share),
            "fast_psi_drifted_features": int(fast_drifted),
            "prediction_score_psi": score_psi,
            "prediction_score_drifted": bool(score.drifted),
            "label_psi": label_psi,
            "recent_label_up_rate": label_up_rate,
            "reference_label_up_rate": float(reference_doc.get("label_up_rate", float("nan"))),
            "window": f"{current.index[0][0]:%Y-%m-%d} → {current.index[-1][0]:%Y-%m-%d}",
            "top_drifted_features": dg.MetadataValue.md(table_markdown(top)),
            "report": dg.MetadataValue.path(str(html_path)),
            "mlflow_run": run_link(run),
        },
    )
