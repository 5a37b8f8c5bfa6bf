"""Jobs: retraining, the daily data refresh, rollback, repair and prune. Promotion is a manual
materialization."""

from typing import Any

import dagster as dg
from dagster_mlflow import end_mlflow_on_run_finished
from pydantic import Field

from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.assets.deployment import (
    PRODUCTION_KEY,
    alias_check_evaluation,
    launching_user,
)
from mlplatform.orchestration.assets.evaluation import BacktestConfig
from mlplatform.orchestration.assets.training import TrainingConfig, TuningConfig
from mlplatform.orchestration.liveness import close_dead_dagster_runs, converge, mlflow_run_alive
from mlplatform.orchestration.metadata import mlflow_model_url, rounded
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.registry import (
    RegistryError,
    RetentionPolicy,
    RollbackRecord,
    UnfinishedOperation,
    check_consistency,
    prune,
    repair,
    rollback,
)

# What the data refresh loads (one step: the truth exists only with the synthetic bars).
DATA_ASSETS = ("raw_prices", "market_truth")
# What a retrain recomputes from the stored bars (those are the data refresh's).
RETRAINED_ASSETS = ("features", "labels", "tuned_params", "staging_model", "backtest_report")

# The run queue lets one run with these tags run at a time (dagster.yaml); CLI retrains carry them.
RETRAIN_TAGS = {"mlplatform/pipeline": "retrain"}
# dagster-mlflow's hook on every step: the run's MLflow run ends after its last step.
ENDS_MLFLOW_RUN = {end_mlflow_on_run_finished}

# The Launchpad settings of a retrain, each checked against its Config's ranges when the run is
# launched: Dagster's own schema knows types, not ranges, and a run refused then plans no checks.
RETRAIN_SETTINGS: dict[str, type[dg.Config]] = {
    "tuned_params": TuningConfig,
    "staging_model": TrainingConfig,
    "backtest_report": BacktestConfig,
}


def _checked_retrain_settings(run_config: dict[str, Any]) -> dict[str, Any]:
    for step, settings in RETRAIN_SETTINGS.items():
        settings(**run_config.get("ops", {}).get(step, {}).get("config", {}))  # raises, naming it
    return run_config


RETRAIN_CONFIG = dg.ConfigMapping(
    config_fn=_checked_retrain_settings,
    config_schema={
        "ops": dg.Field(
            {
                step: dg.Field(
                    {"config": dg.Field(settings.to_fields_dict(), is_required=False)},
                    is_required=False,
                )
                for step, settings in RETRAIN_SETTINGS.items()
            },
            is_required=False,
        ),
        "execution": dg.Field(dg.Permissive(), is_required=False),
        "loggers": dg.Field(dg.Permissive(), is_required=False),
    },
)

retrain_job = dg.define_asset_job(
    name="retrain_job",
    selection=dg.AssetSelection.assets(*RETRAINED_ASSETS),
    description="Tune, train, register a staging version and backtest it with the promotion "
    "checks. Never promotes.",
    tags=RETRAIN_TAGS,
    hooks=ENDS_MLFLOW_RUN,
    config=RETRAIN_CONFIG,
)

# What the daily refresh scores and judges once the day's bars are in.
SERVING_ASSETS = ("predictions", "live_performance")

data_refresh_job = dg.define_asset_job(
    name="data_refresh_job",
    selection=dg.AssetSelection.assets(*DATA_ASSETS, "features", "drift_report", *SERVING_ASSETS)
    | dg.AssetSelection.checks(
        dg.AssetCheckKey(PRODUCTION_KEY, "production_alias_set_by_platform")
    ),
    description="Pull the latest bars, recompute features, report drift against the model, "
    "score the date (predictions, its partition) with production and a waiting challenger, "
    "judge how they do once outcomes are known (live_performance), and check that production "
    "is where the platform put it.",
    tags={"mlplatform/pipeline": "refresh"},
    hooks=ENDS_MLFLOW_RUN,
)


class RollbackConfig(dg.Config):
    to_version: str = Field(
        default="", description="Registry version to restore; empty = the previous production."
    )
    reason: str = Field(default="", description="Why (recorded with the rollback).")
    actor: str = Field(default="", description="Who (default: the launching user).")


def _rollback(
    context: dg.OpExecutionContext, config: RollbackConfig, stores: PlatformStores, actor: str
) -> RollbackRecord:
    """Move production back as asked; a refused or half-done rollback fails the run, unretried."""
    try:
        converge(context, stores)
        return rollback(
            stores.registry(),
            to_version=config.to_version or None,
            actor=actor,
            reason=config.reason or "manual rollback",
            run_id=context.run.run_id,
        )
    except UnfinishedOperation as exc:
        raise dg.Failure(
            description=f"rollback failed half way: {exc}", allow_retries=False
        ) from exc
    except RegistryError as exc:
        # rollback() validates before it moves anything and undoes a failed move itself.
        raise dg.Failure(description=f"rollback not done: {exc}", allow_retries=False) from exc


@dg.op(description="Verify the archived export, then move alias `production` back to it.")
def rollback_production(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    stores: PlatformStores,
    notifier: Notifier,
) -> dict:
    actor = launching_user(context, config.actor)
    record = _rollback(context, config, stores, actor)
    if record.finished_after_crash:
        context.log.warning(
            f"finished the rollback to v{record.to_version} that a dead process began; "
            "not rolling back further"
        )
    details = record.to_dict()
    context.log_event(
        dg.AssetMaterialization(
            asset_key="production_model",
            description=f"rolled back to v{record.to_version} ({record.to_semver})",
            metadata={
                "verdict": "rolled back",
                "production_version": record.to_version,
                "semver": record.to_semver,
                "previous_version": f"{record.from_version} ({record.from_semver})",
                "rolled_back_by": record.actor,
                "reason": record.reason,
                "duration_s": rounded(record.duration_s),
                "lost_files": dg.MetadataValue.md(
                    "\n".join(f"- {loss}" for loss in record.losses) or "_none_"
                ),
                "model_version": dg.MetadataValue.url(
                    mlflow_model_url(stores.model_name, record.to_version)
                ),
                "export": dg.MetadataValue.path(str(stores.models_path / "production")),
            },
        )
    )
    # An op job reports the check on the asset page through Dagster's public runless events.
    context.instance.report_runless_asset_event(alias_check_evaluation(stores, notifier))
    notifier.send(
        Notification(
            NotificationKind.ROLLED_BACK,
            f"{stores.model_name} rolled back to v{details.get('to_version')} by {actor}",
            fields={"from_version": details.get("from_version"), "reason": config.reason},
        )
    )
    return details


@dg.job(description="Move production back to an archived version (default: the previous one).")
def rollback_job() -> None:
    rollback_production()


@dg.op(
    description="After a crash: finish or undo the unfinished registry operation, rebuild "
    "missing or corrupt exports from the registry, close runs of dead processes, then check."
)
def repair_production(context: dg.OpExecutionContext, stores: PlatformStores) -> dict:
    dagster_runs = close_dead_dagster_runs(context.instance)
    run_alive = mlflow_run_alive(context.instance)
    report = repair(stores.registry(), run_alive)
    lines = report.lines() + [f"Dagster runs of dead processes failed: {r}" for r in dagster_runs]
    for line in lines:
        context.log.info(f"repair: {line}")
    problems = check_consistency(stores.registry(), run_alive)
    if problems:
        raise dg.Failure(
            description="repair put right what it could; what remains needs a person:\n- "
            + "\n- ".join(map(str, problems)),
            allow_retries=False,
        )
    return {"lines": lines, "production_version": report.production_version}


@dg.job(
    description="After a crash: bring registry, aliases, tags and every models/ export into "
    "agreement (idempotent)."
)
def repair_export_job() -> None:
    repair_production()


class PruneConfig(dg.Config):
    dry_run: bool = Field(
        default=False, description="List what the policy would remove; remove nothing."
    )


@dg.op(
    description="Remove the registry versions the deployment's retention policy lets go, with "
    "their MLflow runs, Optuna studies and reports; production, the previous production, "
    "staging and archived versions always stay."
)
def prune_registry(
    context: dg.OpExecutionContext,
    config: PruneConfig,
    stores: PlatformStores,
    retention: dg.ResourceParam[RetentionPolicy],
) -> dict:
    try:
        if not config.dry_run:
            converge(context, stores)
        report = prune(stores.registry(), retention, dry_run=config.dry_run)
    except RegistryError as exc:
        # A prune stopped part way keeps its intent: the next registry command finishes it.
        raise dg.Failure(description=f"prune not finished: {exc}", allow_retries=False) from exc
    lines = report.lines()
    for line in lines:
        context.log.info(f"prune: {line}")
    return {"dry_run": config.dry_run, "lines": lines, "removed": report.removal.to_dict()}


@dg.job(
    description="Apply the retention policy (MLPLATFORM_RETENTION_KEEP_LAST / _KEEP_DAYS) to the "
    "registry; dry_run lists what would go."
)
def prune_job() -> None:
    prune_registry()
