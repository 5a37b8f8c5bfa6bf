"""The facts the promotion decision needs, read from the Dagster instance and the registry.

A promotion check only says something about the staging version the backtest_report it evaluated
had scored; that materialization's metadata records which staging and production versions it
compared. Decisions are made in mlplatform.promotion, never here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from mlflow.entities.model_registry import ModelVersion

from mlplatform import config as settings
from mlplatform.orchestration.assets.evaluation import POLICY_METADATA_KEY
from mlplatform.orchestration.assets.serving import SHADOW_TAG
from mlplatform.orchestration.resources import PlatformStores
from mlplatform.promotion import (
    BLOCKING_CRITERIA,
    CRITERION_DESCRIPTIONS,
    CheckEvidence,
    CheckStatus,
    PromotionFacts,
    PromotionPolicy,
)
from mlplatform.registry import audit_production_alias, get_alias_version

BACKTEST_KEY = dg.AssetKey("backtest_report")


def _scored_versions(
    instance: dg.DagsterInstance, storage_id: int
) -> tuple[str | None, str | None]:
    """(staging, production) versions that one backtest_report materialization compared."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BACKTEST_KEY, storage_ids=[storage_id]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None, None
    metadata = records[0].asset_materialization.metadata
    return metadata_text(metadata, "staging_version"), metadata_text(metadata, "production_version")


def metadata_text(metadata: Mapping[str, dg.MetadataValue], key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(value.value)


def _latest_record(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> Any:
    """The latest evaluation record of a check that counts: a finished evaluation, or a planned
    one whose run is still in progress. A plan left by a run that ended without evaluating the
    check (a crash, a failed step before it) says nothing about any version, so the evaluation
    before it stands. (Dagster exposes the history only on its event-log storage.)"""
    in_progress = {dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING}
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=20):
        if isinstance(record.evaluation, dg.AssetCheckEvaluation):
            return record
        run = instance.get_run_by_id(record.run_id)
        if run is not None and run.status in in_progress:
            return record
    return None


def _figures(recorded: object) -> dict[str, float]:
    """The policy a check recorded (JSON metadata): criterion -> threshold."""
    if not isinstance(recorded, Mapping):
        raise TypeError(f"{POLICY_METADATA_KEY} metadata is not a mapping: {recorded!r}")
    return {str(k): float(v) for k, v in recorded.items()}


def check_evidence(instance: dg.DagsterInstance, name: str) -> CheckEvidence:
    record = _latest_record(instance, dg.AssetCheckKey(BACKTEST_KEY, name))
    if record is None:
        return CheckEvidence(name, CheckStatus.NOT_EVALUATED)
    evaluation = record.evaluation
    if (
        not isinstance(evaluation, dg.AssetCheckEvaluation)
        or evaluation.target_materialization_data is None
    ):
        return CheckEvidence(name, CheckStatus.UNFINISHED, run_id=record.run_id)
    storage_id = evaluation.target_materialization_data.storage_id
    staging, production = _scored_versions(instance, storage_id)
    recorded = evaluation.metadata.get(POLICY_METADATA_KEY)
    return CheckEvidence(
        name,
        CheckStatus.PASSED if evaluation.passed else CheckStatus.FAILED,
        description=evaluation.description or "",
        run_id=record.run_id,
        backtest_id=storage_id,
        staging_version=staging,
        production_version=production,
        policy=None if recorded is None else _figures(recorded.value),
    )


def promotion_facts(
    instance: dg.DagsterInstance, stores: PlatformStores, policy: PromotionPolicy
) -> PromotionFacts:
    staging = get_alias_version(stores.tracking_uri, stores.model_name, settings.STAGING_ALIAS)
    production = get_alias_version(
        stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS
    )
    return PromotionFacts(
        staging_version=None if staging is None else str(staging.version),
        production_version=None if production is None else str(production.version),
        rolled_back_version=None
        if production is None
        else production.tags.get("rollback_from_version"),
        checks=tuple(check_evidence(instance, name) for name in BLOCKING_CRITERIA),
        policy=policy,
        alias_moved_outside=audit_production_alias(stores.tracking_uri, stores.model_name)[1],
        checks_shown=len(CRITERION_DESCRIPTIONS),
        shadow_days=int((shadow_record(staging) or {}).get("days", 0)),
    )


def shadow_record(staging: ModelVersion | None) -> dict | None:
    """The staging version's paired live record beside production (live_performance's)."""
    raw = None if staging is None else staging.tags.get(SHADOW_TAG)
    return json.loads(raw) if raw else None
