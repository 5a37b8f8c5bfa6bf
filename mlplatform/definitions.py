"""The code location: every asset, check, job, schedule, sensor and resource, wired once.

`build_definitions()` reads the environment (home folder, data path, secrets) when called, so a
test can point it at a temporary home; `defs` is what `dagster dev` and workspace.yaml load.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dagster as dg

from mlplatform import config
from mlplatform.orchestration.assets import (
    data,
    deployment,
    evaluation,
    monitoring,
    serving,
    training,
)
from mlplatform.orchestration.executors import CLI_ASSETS_JOB, executor_definition
from mlplatform.orchestration.io_manager import AssetValueIOManager, PredictionLogIOManager
from mlplatform.orchestration.jobs import (
    ENDS_MLFLOW_RUN,
    data_refresh_job,
    prune_job,
    repair_export_job,
    retrain_job,
    rollback_job,
)
from mlplatform.orchestration.resources import (
    MarketDataSource,
    Notifier,
    PlatformStores,
    ValidationScheme,
    fixed,
    mlflow_tracking,
)
from mlplatform.orchestration.schedules import (
    daily_refresh_schedule,
    weekly_prune_schedule,
    weekly_retrain_schedule,
)
from mlplatform.orchestration.sensors import (
    decay_sensor,
    drift_sensor,
    run_failure_notification_sensor,
)
from mlplatform.promotion import PromotionPolicy
from mlplatform.registry import RetentionPolicy


def _env_or_none(name: str) -> dg.EnvVar | None:
    """An EnvVar when the variable is set, so the UI shows its name, never its value."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _env_or_default(name: str, default: Callable[[], object], *, as_source: bool = False) -> Any:
    """Store URLs can carry a password: read through EnvVar when set (the UI shows the name),
    else the embedded default. `as_source`: the {"env": name} form of legacy config schemas."""
    if not os.environ.get(name):
        return str(default())
    return {"env": name} if as_source else dg.EnvVar(name)


def _registry_lock_url() -> dg.EnvVar | None:
    """The variable the cross-host registry lock takes its URL from, or None (one host)."""
    name = config.registry_lock_env()
    return None if name is None else dg.EnvVar(name)


def promotion_policy() -> PromotionPolicy:
    """The deployed promotion policy: the defaults, changed only by MLPLATFORM_PROMOTION_POLICY
    (a JSON object of thresholds) when it is set."""
    text = os.environ.get(config.PROMOTION_POLICY_ENV)
    if not text:
        return PromotionPolicy()
    return PromotionPolicy.from_json(text, source=config.PROMOTION_POLICY_ENV)


def retention_policy() -> RetentionPolicy:
    """The deployed retention policy: the defaults, or MLPLATFORM_RETENTION_KEEP_LAST and
    MLPLATFORM_RETENTION_KEEP_DAYS when set (a bad value is refused, naming the variable)."""
    return RetentionPolicy.from_settings(
        os.environ.get(config.RETENTION_KEEP_LAST_ENV) or str(config.RETENTION_KEEP_LAST),
        os.environ.get(config.RETENTION_KEEP_DAYS_ENV) or str(config.RETENTION_KEEP_DAYS),
        sources=(config.RETENTION_KEEP_LAST_ENV, config.RETENTION_KEEP_DAYS_ENV),
    )


def build_resources() -> dict[str, object]:
    """The deployment's resources, as built from the environment (build_definitions freezes
    them: a run's config cannot change any)."""
    market_data = (
        MarketDataSource(
            kind="file",
            path=dg.EnvVar(config.DATA_PATH_ENV),
            date_format=os.environ.get(config.DATE_FORMAT_ENV) or None,
        )
        if os.environ.get(config.DATA_PATH_ENV)
        else MarketDataSource()
    )
    tracking = {
        "experiment_name": config.EXPERIMENT_NAME,
        "mlflow_tracking_uri": _env_or_default(
            config.MLFLOW_TRACKING_URI_ENV, config.mlflow_tracking_uri, as_source=True
        ),
        "artifact_location": str(config.mlflow_artifact_root()),
    }
    return {
        "market_data": market_data,
        "stores": PlatformStores(
            tracking_uri=_env_or_default(
                config.MLFLOW_TRACKING_URI_ENV, config.mlflow_tracking_uri
            ),
            optuna_storage=_env_or_default(config.OPTUNA_STORAGE_ENV, config.optuna_storage_url),
            models_dir=str(config.models_dir()),
            reports_dir=str(config.reports_dir()),
            predictions_dir=_env_or_default(config.PREDICTIONS_DIR_ENV, config.predictions_dir),
            registry_lock_url=_registry_lock_url(),
        ),
        "validation": ValidationScheme(),
        "policy": promotion_policy(),
        "retention": retention_policy(),
        "notifier": Notifier(
            webhook_url=_env_or_none(config.WEBHOOK_URL_ENV),
            slack_token=_env_or_none(config.SLACK_TOKEN_ENV),
            slack_channel=os.environ.get(config.SLACK_CHANNEL_ENV, "#mlplatform"),
            slack_api_url=os.environ.get(config.SLACK_API_URL_ENV) or config.SLACK_API_URL_DEFAULT,
        ),
        "mlflow": mlflow_tracking.configured(
            lambda _config, tracking=tracking: tracking, config_schema={}
        ),
        # Distributed steps need a base_dir every worker reaches (MLPLATFORM_IO_DIR: a shared
        # folder or an object-store URL).
        "io_manager": AssetValueIOManager(
            base_dir=_env_or_default(config.IO_DIR_ENV, lambda: str(config.io_dir()))
        ),
        "prediction_log": PredictionLogIOManager(
            root=_env_or_default(config.PREDICTIONS_DIR_ENV, config.predictions_dir)
        ),
    }


def _ending_its_mlflow_run(definition: Any) -> Any:
    """dagster-mlflow's hook on every asset or check that logs to the run's MLflow run: the run
    ends FINISHED after the last step of the Dagster run, FAILED when a step fails, whether a
    job or the UI's Materialize button launched it."""
    if "mlflow" in definition.required_resource_keys:
        return definition.with_hooks(ENDS_MLFLOW_RUN)
    return definition


def build_definitions(
    overrides: dict[str, object] | None = None, executor: str | None = None
) -> dg.Definitions:
    """`overrides` replaces resources by key (tests use a small market and few folds); `executor`
    (default: MLPLATFORM_EXECUTOR, else the Launchpad's choice) is one of executors.EXECUTORS."""
    modules = [data, training, evaluation, deployment, monitoring, serving]
    return dg.Definitions(
        # Code references: each asset's page links to the function that defines it.
        assets=dg.with_source_code_references(
            [_ending_its_mlflow_run(a) for a in dg.load_assets_from_modules(modules)]
        ),
        asset_checks=[
            _ending_its_mlflow_run(c) for c in dg.load_asset_checks_from_modules(modules)
        ],
        jobs=[retrain_job, data_refresh_job, rollback_job, repair_export_job, prune_job],
        schedules=[weekly_retrain_schedule, daily_refresh_schedule, weekly_prune_schedule],
        sensors=[drift_sensor, decay_sensor, run_failure_notification_sensor],
        resources={
            key: fixed(resource)
            for key, resource in {**build_resources(), **(overrides or {})}.items()
        },
        executor=executor_definition(
            executor or os.environ.get(config.EXECUTOR_ENV) or "multiprocess"
        ),
    )


def job_for(name: str, executor: str) -> dg.JobDefinition:
    """The job a step process rebuilds for a CLI run with `--executor`: the same executor."""
    defs = build_definitions(executor=executor)
    if name == CLI_ASSETS_JOB:
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job(name)]))
    return defs.resolve_job_def(name)


defs = build_definitions()
