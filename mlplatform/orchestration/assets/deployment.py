"""Group `deployment`: the production model, moved only by a person (UI button or CLI)."""

import getpass

import dagster as dg
from mlflow.exceptions import MlflowException
from pydantic import Field

from mlplatform import config as settings
from mlplatform.evaluation.promotion import BLOCKING_CRITERIA
from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.metadata import mlflow_model_url, ownership
from mlplatform.orchestration.promotion_gate import check_promotion_gate
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.registry import RegistryError, get_alias_version, promote


class PromotionConfig(dg.Config):
    """What a person fills in on the Launchpad when promoting."""

    reason: str = Field(default="", description="Why this version goes to production.")
    override: bool = Field(
        default=False,
        description="Promote although promotion checks failed or are stale; needs a reason.",
    )
    actor: str = Field(default="", description="Who promotes (default: the launching user).")


def launching_user(context: dg.AssetExecutionContext | dg.OpExecutionContext, given: str) -> str:
    return given or context.run.tags.get("dagster/user") or getpass.getuser()


@dg.asset(
    group_name="deployment",
    **ownership("manual"),
    deps=["backtest_report"],
    kinds={"mlflow"},
    description="Alias `production` and the models/production export. Materialize it by hand to "
    "promote the current staging version; it refuses unless every promotion check passed for "
    "exactly that version.",
)
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    stores: PlatformStores,
    notifier: Notifier,
) -> dg.Output[dict]:
    staging = get_alias_version(stores.tracking_uri, stores.model_name, settings.STAGING_ALIAS)
    if staging is None:
        raise dg.Failure(
            description="no staging model to promote: materialize staging_model and "
            "backtest_report first",
            allow_retries=False,
        )
    production = get_alias_version(
        stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS
    )
    gate = check_promotion_gate(
        context.instance,
        str(staging.version),
        BLOCKING_CRITERIA,
        production_version=None if production is None else str(production.version),
    )
    problems = list(gate.problems)
    if production is not None and production.tags.get("rollback_from_version") == str(
        staging.version
    ):
        problems.append(
            f"v{staging.version} was rolled back out of production (now v{production.version}); "
            "promoting it again needs override with a reason"
        )
    overridden = False
    if problems:
        if not config.override:
            raise dg.Failure(
                description=f"refusing to promote staging v{staging.version}:\n- "
                + "\n- ".join(problems),
                metadata={"failing_or_stale_checks": len(problems)},
                allow_retries=False,
            )
        if not config.reason.strip():
            raise dg.Failure(
                description="override=True needs a written reason in the `reason` field",
                allow_retries=False,
            )
        overridden = True
        context.log.warning("promotion override: " + config.reason + " | " + "; ".join(problems))
    actor = launching_user(context, config.actor)
    try:
        record = promote(
            tracking_uri=stores.tracking_uri,
            name=stores.model_name,
            version=str(staging.version),
            export_root=stores.models_path,
            actor=actor,
            reason=config.reason or "manual promotion",
            run_id=context.run_id,
            override=overridden,
        )
    except (RegistryError, MlflowException) as exc:
        now = get_alias_version(stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS)
        moved = now is not None and str(now.version) == str(staging.version)
        raise dg.Failure(
            description=f"promotion of v{staging.version} failed: {exc}. "
            + (
                "The production alias already points at it: materialize production_model "
                "again to finish the export."
                if moved
                else "Production is unchanged."
            ),
            allow_retries=False,
        ) from exc
    details = record.to_dict()
    notifier.send(
        Notification(
            NotificationKind.PROMOTED,
            f"{stores.model_name} v{staging.version} promoted to production by {actor}",
            fields={
                "previous_production": details.get("previous_version"),
                "reason": config.reason or "manual promotion",
                "override": overridden,
            },
        )
    )
    return dg.Output(
        details,
        metadata={
            "production_version": str(staging.version),
            "semver": str(details.get("semver")),
            "previous_version": str(details.get("previous_version")),
            "promoted_by": actor,
            "promoted_at": str(details.get("promoted_at")),
            "promotion_run_id": context.run_id,
            "reason": config.reason or "manual promotion",
            "override": overridden,
            "override_problems": dg.MetadataValue.md(
                "\n".join(f"- {p}" for p in problems) or "_none_"
            ),
            "model_version": dg.MetadataValue.url(
                mlflow_model_url(stores.model_name, staging.version)
            ),
            "export": dg.MetadataValue.path(str(stores.models_path / "production")),
        },
    )
