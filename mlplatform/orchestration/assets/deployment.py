"""Group `deployment`: the production model, moved only by a person (UI button or CLI).

A refused promotion is a verdict, not a crash: the run succeeds without materializing
production_model (so production keeps its green status), the verdict is recorded as an
observation of production_model and logged first, and no failure is notified.
"""

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from mlflow.exceptions import MlflowException
from pydantic import Field

from mlplatform import config as settings
from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.liveness import converge
from mlplatform.orchestration.metadata import mlflow_model_url, ownership, table_metadata
from mlplatform.orchestration.promotion_facts import promotion_facts, shadow_record
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.promotion import Decision, PromotionPolicy, decide_promotion
from mlplatform.registry import (
    PromotionRecord,
    RegistryError,
    audit_production_alias,
    get_alias_version,
    promote,
    registry_tag,
)
from mlplatform.registry.card import CARD_FILE

PRODUCTION_KEY = dg.AssetKey("production_model")
VERDICT_TAG = "mlplatform/verdict"  # on the run: promoted, refused
ALERTED_TAG = "mlplatform.alias_alerted"  # registered-model tag: the move already notified


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
    """Move the production alias as decided; a failed move says where production is."""
    version = str(decision.staging_version)
    try:
        return promote(
            stores.registry(),
            version,
            actor=actor,
            reason=decision.reason or "manual promotion",
            run_id=context.run.run_id,
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


def _shadow_metadata(stores: PlatformStores) -> dict[str, Any]:
    """The staging version's live record in shadow beside production, when it has one."""
    staging = get_alias_version(stores.tracking_uri, stores.model_name, settings.STAGING_ALIAS)
    record = shadow_record(staging)
    if record is None:
        return {"shadow_record": "none yet: the daily refresh scores a waiting version beside "
                "production"}  # fmt: skip
    return {"shadow_record": table_metadata(pd.DataFrame([record]))}


def _refusal(context: dg.AssetExecutionContext, decision: Decision, stores: PlatformStores) -> None:
    """Record the verdict where a person looks: first in the run's log, on the asset's page."""
    context.log.warning(decision.message())
    context.instance.add_run_tags(context.run.run_id, {VERDICT_TAG: "refused"})
    context.log_event(
        dg.AssetObservation(
            asset_key=PRODUCTION_KEY,
            description=decision.message(),
            metadata={
                "verdict": "refused",
                "staging_version": str(decision.staging_version or "none"),
                "problems": dg.MetadataValue.md(
                    "\n".join(
                        f"- {line}" for line in decision.problem_lines + list(decision.refusals)
                    )
                ),
                "next_steps": dg.MetadataValue.md(
                    "\n".join(f"- {step}" for step in decision.next_steps()) or "_none_"
                ),
                **_shadow_metadata(stores),
            },
        )
    )


def _promotion_metadata(
    record: PromotionRecord,
    decision: Decision,
    stores: PlatformStores,
    policy: PromotionPolicy,
) -> dict[str, Any]:
    return {
        "verdict": "promoted",
        "production_version": record.version,
        "semver": record.semver,
        "previous_version": record.previous_version or "none",
        "promoted_by": record.actor,
        "promoted_at": record.promoted_at,
        "promotion_run_id": record.run_id,
        "reason": record.reason,
        "override": record.override,
        "override_problems": dg.MetadataValue.md(
            "\n".join(f"- {p}" for p in decision.problem_lines) if decision.overridden else "_none_"
        ),
        "promotion_policy": dg.MetadataValue.json(policy.to_dict()),
        "model_version": dg.MetadataValue.url(mlflow_model_url(stores.model_name, record.version)),
        "export": dg.MetadataValue.path(str(stores.models_path / "production")),
        **_card_metadata(stores.models_path / "production" / CARD_FILE),
    }


def _card_metadata(card: Path) -> dict[str, Any]:
    """The model card, readable on the asset's page, and where its file is."""
    if not card.is_file():
        return {}
    return {
        "model_card": dg.MetadataValue.md(card.read_text(encoding="utf-8")),
        "model_card_file": dg.MetadataValue.path(str(card)),
    }


ALIAS_CHECK = dg.AssetCheckSpec(
    "production_alias_set_by_platform",
    asset=PRODUCTION_KEY,
    description="The production alias points where the platform's last promotion or rollback "
    "put it, not where someone moved it in MLflow's UI or API. Runs on the daily refresh and "
    "with every promotion attempt (a refusal included); a failure is notified once per move.",
)


# A multi-asset so that the alias check is this step's own: evaluated on every Materialize,
# refused or not (a check downstream of an output that was not produced would be skipped, and a
# grey "skipped" would replace the red result a person must see), and alone when only the check
# is selected (the daily refresh, Execute on the Checks tab).
@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PRODUCTION_KEY,
            group_name="deployment",
            **ownership("manual"),
            deps=["backtest_report"],
            kinds={"mlflow"},
            skippable=True,
            description="Alias `production` and the models/production export. Materialize it by "
            "hand to promote the current staging version; it refuses (a verdict recorded on this "
            "page, not a failure) unless every promotion check passed for exactly that version "
            "under the deployed policy (override: true with a reason promotes anyway, recorded).",
        )
    ],
    check_specs=[ALIAS_CHECK],
    can_subset=True,
)
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    stores: PlatformStores,
    notifier: Notifier,
    policy: dg.ResourceParam[PromotionPolicy],
):
    if PRODUCTION_KEY in context.selected_asset_keys:
        yield from _promotion_attempt(context, config, stores, notifier, policy)
    if ALIAS_CHECK.key in context.selected_asset_check_keys:
        yield _alias_check(stores, notifier)


def _promotion_attempt(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    stores: PlatformStores,
    notifier: Notifier,
    policy: PromotionPolicy,
) -> Iterator[dg.MaterializeResult]:
    converge(context, stores)  # what a dead process left is put right before deciding
    decision = decide_promotion(
        promotion_facts(context.instance, stores, policy),
        override=config.override,
        reason=config.reason,
    )
    if not decision.allowed:
        _refusal(context, decision, stores)
        return
    if decision.overridden:
        context.log.warning(
            f"promotion override: {decision.reason} | " + "; ".join(decision.problem_lines)
        )
    actor = launching_user(context, config.actor)
    record = _promote(context, stores, decision, actor, policy)
    notifier.send(
        Notification(
            NotificationKind.PROMOTED,
            f"{stores.model_name} v{record.version} promoted to production by {actor}",
            fields={
                "previous_production": record.previous_version,
                "reason": record.reason,
                "override": record.override,
            },
        )
    )
    # The registry holds the record (alias, tags, export): the asset keeps no value of its own.
    yield dg.MaterializeResult(
        asset_key=PRODUCTION_KEY, metadata=_promotion_metadata(record, decision, stores, policy)
    )


def _alias_check(stores: PlatformStores, notifier: Notifier) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=PRODUCTION_KEY,
        check_name=ALIAS_CHECK.name,
        severity=dg.AssetCheckSeverity.ERROR,
        **alias_verdict(stores, notifier),
    )


def alias_check_evaluation(stores: PlatformStores, notifier: Notifier) -> dg.AssetCheckEvaluation:
    """The alias check, evaluated by a step that moved the alias without materializing
    production_model (rollback_job), so the check never shows the alias before the move."""
    return dg.AssetCheckEvaluation(
        asset_key=PRODUCTION_KEY,
        check_name=ALIAS_CHECK.name,
        severity=dg.AssetCheckSeverity.ERROR,
        **alias_verdict(stores, notifier),
    )


def alias_verdict(stores: PlatformStores, notifier: Notifier) -> dict[str, Any]:
    """passed, description and metadata of the alias check; notifies a move outside once."""
    production, moved_outside = audit_production_alias(stores.tracking_uri, stores.model_name)
    client, name = stores.client, stores.model_name
    told = moved_outside is not None and registry_tag(client, name, ALERTED_TAG) == str(production)
    if moved_outside and not told:
        client.set_registered_model_tag(name, ALERTED_TAG, str(production))
        notifier.send(
            Notification(
                NotificationKind.ALIAS_MOVED_OUTSIDE,
                f"{stores.model_name}: production alias moved outside the platform "
                f"(now v{production})",
                fields={"details": moved_outside},
            )
        )
    return dict(
        passed=moved_outside is None,
        description=moved_outside
        or (
            "nothing in production yet"
            if production is None
            else f"production v{production} is where the platform put it"
        ),
        metadata={"production_version": "none" if production is None else str(production)},
    )
