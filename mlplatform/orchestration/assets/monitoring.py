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
from mlplatform.orchestration.metadata import (
    mlflow_artifact_url,
    ownership,
    rounded_metadata,
    run_link,
    table_metadata,
)
from mlplatform.orchestration.resources import PlatformStores, ValidationScheme
from mlplatform.registry import (
    audit_production_alias,
    download_reference,
    get_alias_version,
    load_booster,
)
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
    **ownership("daily"),
    deps=["staging_model"],  # not backtest_report: a failed gate must not stop monitoring
    kinds={"evidently", "mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="How far the recent features, prediction scores and labels moved from the "
    "monitored model's training data (PSI; the drift sensor's share first, Evidently's report "
    "linked).",
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
    top = (
        pd.DataFrame(
            {
                "psi": fast,
                "report_psi": summary.per_feature.set_index("feature")["psi"].reindex(fast.index),
            }
        )
        .rename_axis("feature")
        .sort_values("psi", ascending=False)
        .head(10)
    )
    artifact = f"drift/{html_path.name}"
    return dg.Output(
        {
            "model_version": str(version.version),
            "alias": alias,
            "drift_share": fast_share,
            "evidently_drift_share": summary.share_drifted,
            "dataset_drift": bool(summary.dataset_drift),
            "fast_psi": {k: float(v) for k, v in fast.items()},
            "score_psi": score_psi,
            "html": str(html_path),
        },
        metadata=rounded_metadata(
            {
                "monitored_model": f"{alias} v{version.version}",
                # One figure per concept: the share the drift sensor acts on comes first.
                "drift_share": float(fast_share),
                "drifted_features": int(fast_drifted),
                "features": len(fast),
                "drift_share_at_retrain_threshold": bool(fast_share >= settings.DRIFT.drift_share),
                "prediction_score_psi": score_psi,
                "prediction_score_drifted": bool(score.drifted),
                "label_psi": label_psi,
                "recent_label_up_rate": label_up_rate,
                "reference_label_up_rate": float(reference_doc.get("label_up_rate", float("nan"))),
                "window": f"{current.index[0][0]:%Y-%m-%d} → {current.index[-1][0]:%Y-%m-%d}",
                "top_drifted_features": table_metadata(top),
                "evidently_report_drift_share": float(summary.share_drifted),
                "evidently_report_drifted_features": int(summary.n_drifted),
                "about_the_two_drift_shares": dg.MetadataValue.md(
                    drift_figures_note(len(current), summary.current_rows)
                ),
                "report": dg.MetadataValue.url(mlflow_artifact_url(run, artifact)),
                "report_file": dg.MetadataValue.path(str(html_path)),
                "mlflow_run": run_link(run),
            }
        ),
    )


def drift_figures_note(window_rows: int, report_rows: int) -> str:
    """Why drift_share (the sensor's) and the Evidently report's share can differ."""
    return (
        f"Both count the features whose PSI is at least {settings.DRIFT.psi_threshold}. "
        "**drift_share** is the figure the drift sensor acts on (retrain at "
        f"{settings.DRIFT.drift_share:.0%}): PSI of all {window_rows:,} recent rows against the "
        f"{settings.DRIFT.n_bins} reference-quantile bins stored with the model. The **Evidently "
        "report** bins each feature afresh (equal-width bins over reference and recent rows "
        "together) on a sample "
        f"of {report_rows:,} recent rows, so its PSI per feature, and its share, differ "
        "somewhat. Decide on drift_share; read the report for the per-feature pictures."
    )


@dg.asset_check(
    asset=drift_report,
    description="The production alias points where the platform's last promotion or rollback "
    "put it, not where someone moved it in MLflow's UI or API.",
)
def production_alias_set_by_platform(stores: PlatformStores) -> dg.AssetCheckResult:
    production, moved_outside = audit_production_alias(stores.tracking_uri, stores.model_name)
    return dg.AssetCheckResult(
        passed=moved_outside is None,
        severity=dg.AssetCheckSeverity.ERROR,
        description=moved_outside
        or (
            "nothing in production yet"
            if production is None
            else f"production v{production} is where the platform put it"
        ),
        metadata={"production_version": "none" if production is None else str(production)},
    )
