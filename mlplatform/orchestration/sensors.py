"""Sensors: retrain on drift (fast PSI against the reference bins stored with the model) and
notify failed runs."""

import json
import time

import dagster as dg

from mlplatform import config as settings
from mlplatform.monitoring import ReferenceBins
from mlplatform.monitoring.model_drift import FeatureDrift, recent_rows, retrain_verdict
from mlplatform.notifications import Notification, NotificationKind, drift_detected
from mlplatform.orchestration.jobs import retrain_job
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.promotion import awaiting_review
from mlplatform.registry import download_reference, monitored_model

FEATURES_KEY = dg.AssetKey("features")
PRICES_KEY = dg.AssetKey("raw_prices")


def _latest_features_record(instance: dg.DagsterInstance) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(FEATURES_KEY, limit=1).records
    return records[0] if records else None


@dg.sensor(
    name="drift_sensor",
    job=retrain_job,
    minimum_interval_seconds=settings.DRIFT.sensor_interval_s,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="On each new features materialization, PSI of the recent window against the "
    "monitored model's reference bins; requests retrain_job once per drifted data window.",
)
def drift_sensor(
    context: dg.SensorEvaluationContext, stores: PlatformStores, notifier: Notifier
) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    result = _drift_decision(context, stores, notifier, cursor)
    return dg.SensorResult(
        run_requests=result.run_requests,
        skip_reason=result.skip_reason,
        cursor=json.dumps(cursor),
    )


def _new_features(context: dg.SensorEvaluationContext, cursor: dict) -> str | None:
    """Why there is nothing new to check, or None (and the cursor moved) when there is."""
    record = _latest_features_record(context.instance)
    if record is None:
        return "features has never been materialized"
    if record.storage_id == cursor.get("features_storage_id"):
        prices = context.instance.fetch_materializations(PRICES_KEY, limit=1).records
        if prices and prices[0].storage_id > record.storage_id:
            return (
                "raw_prices has new bars that features has not seen yet: "
                "materialize features (data_refresh_job does both)"
            )
        return "no new features materialization since the last check"
    cursor["features_storage_id"] = record.storage_id
    return None


def _drift_decision(
    context: dg.SensorEvaluationContext, stores: PlatformStores, notifier: Notifier, cursor: dict
) -> dg.SensorResult:
    """Retrain or not on the latest features (updates `cursor` in place)."""
    nothing_new = _new_features(context, cursor)
    if nothing_new:
        return dg.SensorResult(skip_reason=nothing_new)
    model = monitored_model(stores.tracking_uri, stores.model_name)
    if model is None:
        return dg.SensorResult(
            skip_reason="no staging or production model yet: no reference to compare against",
            cursor=json.dumps(cursor),
        )
    reference = download_reference(stores.tracking_uri, stores.model_name, model.version)
    repository = context.repository_def
    assert repository is not None  # a sensor is evaluated inside its code location
    with repository.get_asset_value_loader(instance=context.instance) as loader:
        features = loader.load_asset_value(FEATURES_KEY)
    current = recent_rows(features, settings.DRIFT.recent_business_days)
    drift = FeatureDrift.of(ReferenceBins.from_dict(reference["features"]), current)
    verdict = retrain_verdict(drift, model, cursor)
    if not verdict.retrain:
        return dg.SensorResult(skip_reason=verdict.message, cursor=json.dumps(cursor))
    cursor["last_request_ts"] = time.time()
    cursor["requested_for"] = model.key
    context.log.info(f"requesting retrain_job: {verdict.message}")
    # One drifted data window for one model version never launches two retrains.
    run_key = f"drift:{stores.model_name}:v{model.version}:{drift.window_end}"
    notifier.send(
        drift_detected(
            drift.psi,
            threshold=settings.DRIFT.psi_threshold,
            window_end=drift.window_end,
            reference=f"{model.alias} v{model.version}",
            requested=f"retrain_job, run key {run_key} (Runs, tag mlplatform/trigger=drift_sensor)",
        )
    )
    request = dg.RunRequest(
        run_key=run_key,
        tags={
            "mlplatform/trigger": "drift_sensor",
            "mlplatform/drift_share": f"{drift.share:.4f}",
            "mlplatform/drifted_features": str(drift.n_drifted),
            "mlplatform/window_end": drift.window_end,
            "mlplatform/reference_version": model.version,
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor))


DECAY_CHECK = dg.AssetCheckKey(dg.AssetKey("live_performance"), "performance_decay")


@dg.sensor(
    name="decay_sensor",
    job=retrain_job,
    minimum_interval_seconds=settings.DRIFT.sensor_interval_s,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="When the decay check finds production's live accuracy significantly below its "
    "walk-forward expectation, requests retrain_job: once per alarm (run key), and not while "
    "the retrained version it asked for waits for a person.",
)
def decay_sensor(context: dg.SensorEvaluationContext, stores: PlatformStores) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    record = context.instance.get_latest_asset_check_evaluation_record(DECAY_CHECK)
    evaluation = None if record is None else record.evaluation
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
        return dg.SensorResult(skip_reason="production keeps its live edge (or is not judged yet)")
    version = str(evaluation.metadata["champion_version"].value)
    alarm = str(evaluation.metadata["alarm_date"].value)
    model = monitored_model(stores.tracking_uri, stores.model_name)
    if model is not None and awaiting_review(
        cursor.get("requested_for"),
        cursor.get("requested_at"),
        monitored=model.key,
        monitored_is_staging=model.alias == settings.STAGING_ALIAS,
        monitored_created_at=model.created_at,
    ):
        return dg.SensorResult(
            skip_reason=f"v{version} decayed (alarm {alarm}); the retrain already requested "
            "gave a version that waits for a person: review and promote it to re-arm",
            cursor=json.dumps(cursor),
        )
    evidence = f"v{version}:{alarm}"
    if model is not None:
        cursor |= {"requested_for": model.key, "requested_at": time.time()}
    context.log.info(f"requesting retrain_job: production {evidence} lost its live edge")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"decay:{stores.model_name}:{evidence}",  # one request per alarm
                tags={"mlplatform/trigger": "decay_sensor", "mlplatform/decay": evidence},
            )
        ],
        cursor=json.dumps(cursor),
    )


@dg.run_failure_sensor(
    name="run_failure_notification_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notifies every failed run (a refused promotion is a verdict, not a failure).",
)
def run_failure_notification_sensor(
    context: dg.RunFailureSensorContext, notifier: Notifier
) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    notifier.send(
        Notification(
            NotificationKind.RUN_FAILED,
            f"run of {run.job_name} failed",
            fields={"run_id": run.run_id, "error": message[:500]},
        )
    )
