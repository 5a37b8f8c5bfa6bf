"""Jobs: retraining, the daily data refresh and rollback. Promotion is a manual materialization."""

import dagster as dg
from pydantic import Field

from mlplatform.config import PRODUCTION_ALIAS
from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.assets.deployment import launching_user
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.registry import get_alias_version, repair_production_export, rollback

retrain_job = dg.define_asset_job(
    name="retrain_job",
    selection=dg.AssetSelection.assets(
        "features", "tuned_params", "staging_model", "backtest_report"
    ),
    description="Tune, train, register a staging version and backtest it with the promotion "
    "checks. Never promotes.",
    tags={"mlplatform/pipeline": "retrain"},
)

data_refresh_job = dg.define_asset_job(
    name="data_refresh_job",
    selection=dg.AssetSelection.assets("raw_prices", "features", "drift_report"),
    description="Pull the latest bars, recompute features, report drift against the model.",
    tags={"mlplatform/pipeline": "refresh"},
)


class RollbackConfig(dg.Config):
    to_version: str = Field(
        default="", description="Registry version to restore; empty = the previous production."
    )
    reason: str = Field(default="", description="Why (recorded with the rollback).")
    actor: str = Field(default="", description="Who (default: the launching user).")


@dg.op(description="Verify the archived export, then move alias `production` back to it.")
def rollback_production(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    stores: PlatformStores,
    notifier: Notifier,
) -> dict:
    actor = launching_user(context, config.actor)
    before = get_alias_version(stores.tracking_uri, stores.model_name, PRODUCTION_ALIAS)
    try:
        with stores.registry_lock():
            record = rollback(
                tracking_uri=stores.tracking_uri,
                name=stores.model_name,
                to_version=config.to_version or None,
                export_root=stores.models_path,
                actor=actor,
                reason=config.reason or "manual rollback",
                run_id=context.run_id,
            )
    except Exception as exc:
        after = get_alias_version(stores.tracking_uri, stores.model_name, PRODUCTION_ALIAS)
        if after is not None and (before is None or after.version != before.version):
            raise dg.Failure(
                description=f"rollback stopped half way: the production alias now points at "
                f"v{after.version} but the export was not finished ({exc}); run repair_export_job "
                "(`make repair`) to bring models/production in line, do not roll back again",
                allow_retries=False,
            ) from exc
        raise dg.Failure(description=f"rollback refused: {exc}", allow_retries=False) from exc
    details = record.to_dict()
    context.log_event(
        dg.AssetMaterialization(
            asset_key="production_model",
            description=f"rolled back to v{details.get('to_version')}",
            metadata={
                "production_version": str(details.get("to_version")),
                "previous_version": str(details.get("from_version")),
                "rolled_back_by": actor,
                "reason": config.reason or "manual rollback",
                "duration_s": float(details.get("duration_s", 0.0)),
            },
        )
    )
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


@dg.op(description="Rewrite models/production from the version the production alias points at.")
def repair_production(context: dg.OpExecutionContext, stores: PlatformStores) -> dict:
    with stores.registry_lock():
        report = repair_production_export(
            tracking_uri=stores.tracking_uri, name=stores.model_name, export_root=stores.models_path
        )
    context.log.info(f"repair: {report}")
    return report


@dg.job(description="After a crash: make the models/production export match the production alias.")
def repair_export_job() -> None:
    repair_production()
