"""Moving the `production` alias: promotion and rollback, one protocol.

The caller (the production_model asset, the rollback job) decides *whether* to move it; these
functions do the move: validate every input, take the registry lock and converge (recovery.py),
check the target's files, record the intent (from, to, every tag before and after), set the
tags and the alias (the commit point), project models/ from the registry, clear the intent. A
failure in-process moves back (production unchanged); a crash leaves the intent, which the next
command finishes if the alias moved and undoes otherwise. The version leaving production is never
read: when its files are lost it is named as lost, not required.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlplatform import config
from mlplatform.registry import export
from mlplatform.registry.errors import PromotionError, RollbackError, UnfinishedOperation
from mlplatform.registry.journal import Intent, clear_intent, write_intent
from mlplatform.registry.projection import Projection, Sources, project
from mlplatform.registry.recovery import (
    Convergence,
    converge_locked,
    move_back,
    move_forward,
    tags_before,
)
from mlplatform.registry.store import (
    TAG_ARCHIVED,
    TAG_ARCHIVED_AT,
    TAG_OVERRIDE,
    TAG_PENDING,
    TAG_PREVIOUS_PRODUCTION,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_REASON,
    TAG_PROMOTION_RUN_ID,
    TAG_ROLLBACK_FROM,
    TAG_ROLLBACK_REASON,
    TAG_ROLLBACK_RUN_ID,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    TAG_SEMVER,
    Registry,
    alias_version,
    all_versions,
    now_utc,
    was_production,
)

TAG_PROMOTION_POLICY = "promotion_policy"


@dataclass(frozen=True)
class PromotionRecord:
    """Who promoted which version, when, in which run, and why; what changed on disk."""

    name: str
    version: str
    semver: str
    model_uri: str
    previous_version: str | None
    previous_semver: str | None
    actor: str
    reason: str
    run_id: str
    override: bool
    promoted_at: str
    export_dir: str
    archive_dir: str
    pruned: list[str] = field(default_factory=list)
    repaired: bool = False  # the alias already pointed here: this call completed/checked the rest
    export_rewritten: bool = True
    duration_s: float = 0.0
    converged: str = ""  # what this call found left behind and put right first
    losses: list[str] = field(default_factory=list)  # versions whose files are gone everywhere

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RollbackRecord:
    name: str
    from_version: str
    from_semver: str
    to_version: str
    to_semver: str
    actor: str
    reason: str
    run_id: str
    rolled_back_at: str
    export_dir: str
    archive_dir: str
    duration_s: float = 0.0
    finished_after_crash: bool = False  # this call completed a rollback a dead process began
    converged: str = ""
    losses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_text(what: str, value: str, limit: int, *, required: bool, err: type) -> None:
    if required and not value.strip():
        raise err(f"{what} is empty")
    if len(value) > limit:
        raise err(f"{what} is {len(value):,} characters; the limit is {limit:,}")


def _usable_version(client: MlflowClient, name: str, version: str, err: type) -> ModelVersion:
    if not version.isdigit():
        raise err(f"version {version!r} is not a registry version number")
    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise err(f"models:/{name}/{version} does not exist: {exc}") from exc
    if mv.status != "READY":
        raise err(f"models:/{name}/{version} is {mv.status}, not READY")
    if TAG_PENDING in mv.tags:
        raise err(f"models:/{name}/{version} is an unfinished registration, not a model")
    return mv


def smoke_predict(booster: lgb.Booster) -> float:
    """Predict one all-zero row: proves the model parses into something that scores."""
    pred = np.asarray(booster.predict(np.zeros((1, booster.num_feature()), dtype=np.float64)))
    if pred.size < 1 or not np.all(np.isfinite(pred)):
        raise ValueError("the model predicts a non-finite value on a probe row")
    return float(pred.ravel()[0])


def _healthy(registry: Registry, client: MlflowClient, mv: ModelVersion, err: type) -> None:
    """The target's model can be read (from the registry, or an intact export copy of it) and
    scores a row; otherwise `err` names what is lost."""
    sources = Sources(client, registry.tracking_uri, registry.name, Path(registry.export_root))
    text = sources.text(mv)
    if text is None:
        raise err(f"refusing to move production to v{mv.version}: {sources.lost[str(mv.version)]}")
    try:
        smoke_predict(lgb.Booster(model_str=text))
    except (lgb.basic.LightGBMError, ValueError) as exc:
        raise err(f"refusing to move production to v{mv.version}: {exc}") from exc


def _run_move(registry: Registry, client: MlflowClient, intent: Intent) -> Projection:
    """Record the intent, move, project; on a failure move back (production unchanged)."""
    name = registry.name
    try:
        write_intent(client, intent)
        move_forward(client, intent)
        projection = project(
            client, registry.tracking_uri, name, registry.export_root, registry.retention
        )
    except Exception as exc:  # a KeyboardInterrupt leaves the intent to the next command
        try:
            move_back(client, intent)
            project(client, registry.tracking_uri, name, registry.export_root, registry.retention)
        except Exception as undo_exc:
            raise UnfinishedOperation(
                f"{intent.op} to v{intent.data['to_version']} failed ({type(exc).__name__}: "
                f"{exc}) and undoing it failed too ({type(undo_exc).__name__}: {undo_exc}); the "
                f"intent is kept on registered model {name!r}: run `make repair` (the next "
                "registry command also finishes it)"
            ) from exc
        clear_intent(client, name)
        before = intent.data["from_version"]
        raise PromotionError(
            f"{intent.op} to v{intent.data['to_version']} failed ({type(exc).__name__}: {exc}); "
            f"it was undone: production is unchanged ({'none' if before is None else 'v' + before})"
        ) from exc
    clear_intent(client, name)
    return projection


def _archive_of(registry: Registry, version: str) -> str:
    for folder in reversed(export.list_archive(Path(registry.export_root) / export.ARCHIVE_DIR)):
        if export.archive_registry_version(folder) == version:
            return str(folder)
    return ""


def _pruned(projection: Projection) -> list[str]:
    return [
        item.removeprefix("archive ") for item in projection.removed if item.startswith("archive ")
    ]


# --- promote -----------------------------------------------------------------------------------
def promote(
    registry: Registry,
    version: str | int,
    *,
    actor: str,
    reason: str,
    run_id: str,
    override: bool = False,
    policy: str = "",
) -> PromotionRecord:
    """Make `version` production. Calling it for the version already in production only
    re-projects the export (repaired=True). `policy` (the promotion policy the gate applied,
    in words) is recorded with the move."""
    start = time.perf_counter()
    version, name, client = str(version), registry.name, registry.client
    _check_text(
        "the promotion's actor", actor, config.MAX_ACTOR_CHARS, required=True, err=PromotionError
    )
    if override and not reason.strip():
        raise PromotionError("an override promotion needs a written reason")
    _check_text(
        "the promotion reason", reason, config.MAX_REASON_CHARS, required=False, err=PromotionError
    )
    with registry.lock():
        convergence = converge_locked(registry)
        mv = _usable_version(client, name, version, PromotionError)
        current = alias_version(client, name, config.PRODUCTION_ALIAS)
        repaired = current is not None and str(current.version) == version
        if repaired:
            projection = convergence.projection
            rewritten = any(c.startswith(config.PRODUCTION_ALIAS) for c in projection.changed)
        else:
            _healthy(registry, client, mv, PromotionError)
            now = now_utc().isoformat()
            previous = None if current is None else str(current.version)
            after: dict[str, dict[str, str | None]] = {
                version: {
                    TAG_PROMOTED_BY: actor,
                    TAG_PROMOTED_AT: now,
                    TAG_PROMOTION_RUN_ID: run_id,
                    TAG_PROMOTION_REASON: reason,
                    TAG_OVERRIDE: "true" if override else "false",
                    TAG_PREVIOUS_PRODUCTION: previous or "",
                    TAG_PROMOTION_POLICY: policy or None,
                    TAG_ARCHIVED: None,
                }
            }
            if previous is not None:
                after[previous] = {TAG_ARCHIVED: "true", TAG_ARCHIVED_AT: now}
            intent = Intent(
                "promote",
                name,
                {
                    "from_version": previous,
                    "to_version": version,
                    "tags_after": after,
                    "tags_before": tags_before(client, name, after),
                    "at": now,
                },
            )
            projection = _run_move(registry, client, intent)
            rewritten = True
        mv = client.get_model_version(name, version)
        previous_version = mv.tags.get(TAG_PREVIOUS_PRODUCTION) or None
        previous_mv = client.get_model_version(name, previous_version) if previous_version else None
    return PromotionRecord(
        name=name,
        version=version,
        semver=mv.tags.get(TAG_SEMVER, ""),
        model_uri=f"models:/{name}/{version}",
        previous_version=previous_version,
        previous_semver=None if previous_mv is None else previous_mv.tags.get(TAG_SEMVER),
        actor=mv.tags.get(TAG_PROMOTED_BY, ""),
        reason=mv.tags.get(TAG_PROMOTION_REASON, ""),
        run_id=mv.tags.get(TAG_PROMOTION_RUN_ID, ""),
        override=mv.tags.get(TAG_OVERRIDE) == "true",
        promoted_at=mv.tags.get(TAG_PROMOTED_AT, ""),
        export_dir=str(Path(registry.export_root) / config.PRODUCTION_ALIAS),
        archive_dir=_archive_of(registry, version),
        pruned=_pruned(projection),
        repaired=repaired,
        export_rewritten=rewritten,
        duration_s=time.perf_counter() - start,
        converged=convergence.line() if convergence.changed else "",
        losses=projection.losses,
    )


# --- rollback ----------------------------------------------------------------------------------
def previous_production(client: MlflowClient, current: ModelVersion) -> str | None:
    """The version `current` replaced, else the most recently archived other version."""
    recorded = current.tags.get(TAG_PREVIOUS_PRODUCTION)
    if recorded:
        return recorded
    archived = [
        mv
        for mv in all_versions(client, current.name)
        if mv.tags.get(TAG_ARCHIVED) == "true"
        and str(mv.version) != str(current.version)
        and TAG_PENDING not in mv.tags
    ]
    if not archived:
        return None
    best = max(archived, key=lambda mv: (mv.tags.get(TAG_ARCHIVED_AT, ""), int(mv.version)))
    return str(best.version)


def _rollback_record(
    registry: Registry,
    client: MlflowClient,
    intent: Intent,
    start: float,
    convergence: Convergence,
    losses: list[str],
    *,
    finished_after_crash: bool = False,
) -> RollbackRecord:
    data, name = intent.data, intent.name
    target = client.get_model_version(name, data["to_version"])
    leaving = client.get_model_version(name, data["from_version"])
    return RollbackRecord(
        name=name,
        from_version=data["from_version"],
        from_semver=leaving.tags.get(TAG_SEMVER, ""),
        to_version=data["to_version"],
        to_semver=target.tags.get(TAG_SEMVER, ""),
        actor=target.tags.get(TAG_ROLLED_BACK_BY, ""),
        reason=target.tags.get(TAG_ROLLBACK_REASON, ""),
        run_id=target.tags.get(TAG_ROLLBACK_RUN_ID, ""),
        rolled_back_at=target.tags.get(TAG_ROLLED_BACK_AT, ""),
        export_dir=str(Path(registry.export_root) / config.PRODUCTION_ALIAS),
        archive_dir=_archive_of(registry, data["to_version"]),
        duration_s=time.perf_counter() - start,
        finished_after_crash=finished_after_crash,
        converged=convergence.line() if convergence.changed else "",
        losses=losses,
    )


def rollback(
    registry: Registry,
    *,
    to_version: str | int | None = None,
    actor: str,
    reason: str,
    run_id: str,
) -> RollbackRecord:
    """Point `production` back at a version that was production before, after checking that its
    files load and score. `to_version=None` means the version the current production replaced.
    A refusal raises RollbackError and changes nothing. If an earlier rollback to the same
    target died half way, this call finishes that one (finished_after_crash=True) instead of
    going one version further back."""
    start = time.perf_counter()
    name, client = registry.name, registry.client
    _check_text(
        "the rollback's actor", actor, config.MAX_ACTOR_CHARS, required=True, err=RollbackError
    )
    _check_text(
        "the rollback reason", reason, config.MAX_REASON_CHARS, required=False, err=RollbackError
    )
    if to_version is not None and not str(to_version).isdigit():
        raise RollbackError(f"version {to_version!r} is not a registry version number")
    with registry.lock():
        convergence = converge_locked(registry)
        for done in convergence.recovered:
            data = done.intent.data
            if (
                done.intent.op == "rollback"
                and done.direction == "forward"
                and (to_version is None or str(to_version) == data["to_version"])
            ):
                losses = convergence.projection.losses
                return _rollback_record(
                    registry, client, done.intent, start, convergence, losses,
                    finished_after_crash=True,
                )  # fmt: skip
        current = alias_version(client, name, config.PRODUCTION_ALIAS)
        if current is None:
            raise RollbackError(f"{name} has no production version to roll back from")
        target = str(to_version) if to_version is not None else previous_production(client, current)
        if target is None:
            raise RollbackError(
                f"{name} v{current.version} records no previous production version; pass to_version"
            )
        if target == str(current.version):
            raise RollbackError(f"models:/{name}/{target} is already production")
        target_mv = _usable_version(client, name, target, RollbackError)
        if not was_production(target_mv):
            raise RollbackError(
                f"refusing rollback to models:/{name}/{target}: it was never production; promote "
                "it instead (the promotion checks apply)"
            )
        _healthy(registry, client, target_mv, RollbackError)
        now = now_utc().isoformat()
        after: dict[str, dict[str, str | None]] = {
            target: {
                TAG_ROLLED_BACK_BY: actor,
                TAG_ROLLED_BACK_AT: now,
                TAG_ROLLBACK_REASON: reason,
                TAG_ROLLBACK_RUN_ID: run_id,
                TAG_ROLLBACK_FROM: str(current.version),
                TAG_ARCHIVED: None,
            },
            str(current.version): {TAG_ARCHIVED: "true", TAG_ARCHIVED_AT: now},
        }
        intent = Intent(
            "rollback",
            name,
            {
                "from_version": str(current.version),
                "to_version": target,
                "tags_after": after,
                "tags_before": tags_before(client, name, after),
                "at": now,
            },
        )
        try:
            projection = _run_move(registry, client, intent)
        except PromotionError as exc:
            raise RollbackError(str(exc)) from exc
        return _rollback_record(registry, client, intent, start, convergence, projection.losses)
