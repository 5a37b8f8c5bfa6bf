"""Group `monitoring`: how far the recent market has moved from what the model learned on."""

from typing import Any

import dagster as dg
import pandas as pd
from dagster_mlflow.resources import MlFlow
from pydantic import Field

from mlplatform import config as settings
from mlplatform.monitoring.model_drift import DriftReport, DriftWindow, ModelDrift, measure_drift
from mlplatform.orchestration.errors import STORE_RETRY_POLICY, CheckedConfig, step_guard
from mlplatform.orchestration.metadata import (
    mlflow_artifact_url,
    ownership,
    rounded_metadata,
    run_link,
    table_metadata,
)
from mlplatform.orchestration.resources import PlatformStores, ValidationScheme
from mlplatform.registry import download_reference, load_booster, monitored_model


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


def _drift_metadata(drift: ModelDrift, run: Any) -> dict[str, Any]:
    fast, report = drift.features, drift.report
    artifact = f"drift/{drift.html_path.name}"
    return rounded_metadata(
        {
            "monitored_model": f"{drift.model.alias} v{drift.model.version}",
            # One figure per concept: the share the drift sensor acts on comes first.
            "drift_share": float(fast.share),
            "drifted_features": int(fast.n_drifted),
            "features": len(fast.psi),
            "drift_share_at_retrain_threshold": bool(fast.share >= settings.DRIFT.drift_share),
            "prediction_score_psi": float(drift.score.psi),
            "prediction_score_drifted": bool(drift.score.drifted),
            "label_psi": drift.label_psi,
            "recent_label_up_rate": drift.label_up_rate,
            "reference_label_up_rate": drift.reference_label_up_rate,
            "window": drift.window,
            "top_drifted_features": table_metadata(drift.top_features()),
            "evidently_report_drift_share": float(report.share_drifted),
            "evidently_report_drifted_features": int(report.n_drifted),
            "about_the_two_drift_shares": dg.MetadataValue.md(
                drift_figures_note(drift.current_rows, report.current_rows)
            ),
            "report": dg.MetadataValue.url(mlflow_artifact_url(run, artifact)),
            "report_file": dg.MetadataValue.path(str(drift.html_path)),
            "mlflow_run": run_link(run),
        }
    )


def _log_drift(mlflow: MlFlow, drift: ModelDrift) -> None:
    mlflow.log_artifact(str(drift.html_path), artifact_path="drift")
    mlflow.log_metrics(
        {
            "drift_share": drift.report.share_drifted,
            "drift_fast_psi_share": drift.features.share,
            "drift_score_psi": float(drift.score.psi),
            "drift_label_psi": drift.label_psi,
        }
    )


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
    mlflow: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
) -> dg.Output[DriftReport | None]:
    model = monitored_model(stores.tracking_uri, stores.model_name)
    if model is None:
        # The daily refresh runs before the first model exists; say so rather than fail.
        context.log.info("no staging or production model yet: nothing to compare against")
        return dg.Output(
            None,
            metadata={"monitored_model": "none yet: materialize staging_model first"},
        )
    with step_guard(context):
        drift = measure_drift(
            features,
            raw_prices,
            model,
            download_reference(stores.tracking_uri, stores.model_name, model.version),
            load_booster(stores.tracking_uri, stores.model_name, model.version),
            settings=DriftWindow(
                config.recent_business_days, config.sample_rows, validation.horizon
            ),
            reports_dir=stores.reports_path,
        )
        run = mlflow.active_run()
        _log_drift(mlflow, drift)
    return dg.Output(drift.value(), metadata=_drift_metadata(drift, run))


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
