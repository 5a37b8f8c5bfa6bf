"""Group `deployment`: the production model, moved only by a person (UI button or CLI)."""

import getpass
from typing import Any

import dagster as dg
from mlflow.exceptions import MlflowException
from pydantic import Field

from mlplatform import config as settings
from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.liveness import converge
from mlplatform.orchestration.metadata import mlflow_model_url, ownership
from mlplatform.orchestration.promotion_facts import promotion_facts
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.promotion import Decision, PromotionPolicy, decide_promotion
from mlplatform.registry import PromotionRecord, RegistryError, get_alias_version, promote


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


def _promote(
    context: dg.AssetExecutionContext,
    stores: PlatformStores,
    decision: Decision,
    actor: str,
    policy: PromotionPolicy,
) -> PromotionRecord:
    """Move the production alias as decided; a refused or failed move says where production is."""
    version = str(decision.staging_version)
    try:
        return promote(
            stores.registry(),
            version,
            actor=actor,
            reason=decision.reason or "manual promotion",
            run_id=context.run_id,
            override=decision.overridden,
            policy=policy.describe(),
        )
    except (RegistryError, MlflowException) as exc:
        now = get_alias_version(stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS)
        moved = now is not None and str(now.version) == version
        raise dg.Failure(
            description=f"promotion of v{version} failed: {exc}. "
            + (
                "The production alias already points at it: materialize production_model "
                "again to finish the export."
                if moved
                else "Production is unchanged."
            ),
            allow_retries=False,
        ) from exc


def _promotion_metadata(
    details: dict, decision: Decision, actor: str, run_id: str, stores: PlatformStores
) -> dict[str, Any]:
    version = str(decision.staging_version)
    return {
        "production_version": version,
        "semver": str(details.get("semver")),
        "previous_version": str(details.get("previous_version")),
        "promoted_by": actor,
        "promoted_at": str(details.get("promoted_at")),
        "promotion_run_id": run_id,
        "reason": decision.reason or "manual promotion",
        "override": decision.overridden,
        "override_problems": dg.MetadataValue.md(
            "\n".join(f"- {p}" for p in decision.problems) if decision.overridden else "_none_"
        ),
        "model_version": dg.MetadataValue.url(mlflow_model_url(stores.model_name, version)),
        "export": dg.MetadataValue.path(str(stores.models_path / "production")),
    }


@dg.asset(
    group_name="deployment",
    **ownership("manual"),
    deps=["backtest_report"],
    kinds={"mlflow"},
    description="Alias `production` and the models/production export. Materialize it by hand to "
    "promote the current staging version; it refuses unless every promotion check passed for "
    "exactly that version (override: true with a reason promotes anyway, recorded).",
)
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    stores: PlatformStores,
    notifier: Notifier,
    policy: dg.ResourceParam[PromotionPolicy],
) -> dg.Output[dict]:
    converge(context, stores)  # what a dead process left is put right before deciding
    decision = decide_promotion(
        promotion_facts(context.instance, stores, policy),
        override=config.override,
        reason=config.reason,
    )
    if not decision.allowed:
        raise dg.Failure(
            description=decision.message(),
            metadata={"problems": len(decision.problems) + len(decision.refusals)},
            allow_retries=False,
        )
    reason = decision.reason or "manual promotion"
    if decision.overridden:
        context.log.warning(f"promotion override: {reason} | " + "; ".join(decision.problems))
    actor = launching_user(context, config.actor)
    details = _promote(context, stores, decision, actor, policy).to_dict()
    notifier.send(
        Notification(
            NotificationKind.PROMOTED,
            f"{stores.model_name} v{decision.staging_version} promoted to production by {actor}",
            fields={
                "previous_production": details.get("previous_version"),
                "reason": reason,
                "override": decision.overridden,
            },
        )
    )
    metadata = _promotion_metadata(details, decision, actor, context.run_id, stores)
    metadata["promotion_policy"] = dg.MetadataValue.json(policy.to_dict())
    return dg.Output(details, metadata=metadata)
