"""Promotion and rollback: move the `production` alias and keep models/ in step with it.

The caller (the production_model asset, the rollback job) decides *whether* to promote; these
functions do the move, as one protocol (journal.py): validate every input, take the registry
lock, finish whatever a dead process left, record the intent (from, to, every tag before and
after), then move_forward: tags, alias `production` (the commit point), archive copies,
models/production, pruning; then clear the intent. A failure in-process moves back (production
unchanged); a crash leaves the intent, and the next command or `repair` moves forward if the
alias already moved, else back. Both directions are idempotent.

Archive policy: every promoted version gets an archive copy (`v<semver>-r<version>_<date>`), so
rollback can verify the exact files it will serve; a lost or corrupt copy is rebuilt from the
registry. The version leaving production is tagged archived. Registry versions are never
deleted, only old archive folders.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlplatform import config
from mlplatform.registry.export import (
    METADATA_FILE,
    MODEL_FILE,
    ExportIntegrityError,
    RegistryError,
    archive_dirname,
    archive_registry_version,
    export_matches,
    list_archive,
    load_export_booster,
    prune_archive,
    remove_export,
    verify_export,
    write_export,
)
from mlplatform.registry.journal import (
    Intent,
    UnfinishedOperation,
    clear_intent,
    intent_path,
    registry_lock,
    write_intent,
)
from mlplatform.registry.mlflow_registry import (
    TAG_PENDING,
    TAG_SEMVER,
    _alias_version,
    all_versions,
    client_for,
    now_utc,
    rebuild_alias_export,
)

ARCHIVE_DIR = "archive"
TAG_PROMOTED_BY = "promoted_by"
TAG_PROMOTED_AT = "promoted_at"
TAG_PROMOTION_RUN_ID = "promotion_run_id"
TAG_PROMOTION_REASON = "promotion_reason"
TAG_OVERRIDE = "override"
TAG_PREVIOUS_PRODUCTION = "previous_production_version"
TAG_ARCHIVED_AT = "archived_at"
TAG_ROLLED_BACK_BY = "rolled_back_by"
TAG_ROLLED_BACK_AT = "rolled_back_at"
TAG_ROLLBACK_REASON = "rollback_reason"
TAG_ROLLBACK_RUN_ID = "rollback_run_id"
TAG_ROLLBACK_FROM = "rollback_from_version"


class PromotionError(RegistryError):
    """A promotion was refused or could not be completed."""


class RollbackError(PromotionError):
    """A rollback was refused; nothing was changed."""


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def archive_root_of(export_root: Path) -> Path:
    return Path(export_root) / ARCHIVE_DIR


def production_dir_of(export_root: Path) -> Path:
    return Path(export_root) / config.PRODUCTION_ALIAS


def _read_metadata_unverified(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def find_archive(export_root: Path, name: str, version: str | int) -> Path | None:
    """Newest archive folder of this model version, by its name or its metadata (not verified)."""
    for folder in reversed(list_archive(archive_root_of(export_root))):
        if archive_registry_version(folder) == str(version):
            return folder
        meta = _read_metadata_unverified(folder)
        if meta and meta.get("model_name") == name and meta.get("model_version") == str(version):
            return folder
    return None


def _intact(folder: Path | None) -> bool:
    """Checksums match and LightGBM parses the model (checksums alone only prove the bytes)."""
    if folder is None:
        return False
    try:
        load_export_booster(folder)
    except ExportIntegrityError:
        return False
    return True


def ensure_archive(
    client: MlflowClient, tracking_uri: str, mv: ModelVersion, export_root: Path, when: datetime
) -> Path:
    """An intact archive copy of `mv`: the existing one, else rebuilt from the registry."""
    existing = find_archive(export_root, mv.name, mv.version)
    if _intact(existing):
        assert existing is not None
        return existing
    name = archive_dirname(mv.tags.get(TAG_SEMVER, "0.0.0"), when, mv.version)
    dest = existing if existing is not None else archive_root_of(export_root) / name
    return rebuild_alias_export(client, tracking_uri, mv, dest, alias=ARCHIVE_DIR)


def _write_production(source: Path, extra: dict[str, Any], export_root: Path) -> Path:
    """models/production from a verified archive folder (same model.txt bytes)."""
    meta = verify_export(source)
    meta = {**meta, "alias": config.PRODUCTION_ALIAS, "exported_at": now_utc().isoformat(), **extra}
    return write_export(
        production_dir_of(export_root),
        model_text=(source / MODEL_FILE).read_text(encoding="utf-8"),
        metadata=meta,
    )


def _apply_tags(client: MlflowClient, name: str, tags: dict[str, dict[str, str | None]]) -> None:
    """Set (or, for None, delete) model-version tags: {version: {key: value}}."""
    for version, pairs in tags.items():
        current = client.get_model_version(name, version).tags
        for key, value in pairs.items():
            if value is None:
                if key in current:
                    client.delete_model_version_tag(name, version, key)
            elif current.get(key) != value:
                client.set_model_version_tag(name, version, key, value)


def _tag_values(mv: ModelVersion, fields: dict[str, str]) -> dict[str, str]:
    """{field: the version's value of tag fields[field], or ""}."""
    return {field: mv.tags.get(tag, "") for field, tag in fields.items()}


def _promotion_info(mv: ModelVersion) -> dict[str, Any]:
    return {
        **_tag_values(
            mv,
            {
                "promoted_by": TAG_PROMOTED_BY,
                "promoted_at": TAG_PROMOTED_AT,
                "promotion_run_id": TAG_PROMOTION_RUN_ID,
                "promotion_reason": TAG_PROMOTION_REASON,
            },
        ),
        "override": mv.tags.get(TAG_OVERRIDE, "false") == "true",
        "previous_production_version": mv.tags.get(TAG_PREVIOUS_PRODUCTION) or None,
    }


_ROLLBACK_FIELDS = {
    "rolled_back_by": TAG_ROLLED_BACK_BY,
    "rolled_back_at": TAG_ROLLED_BACK_AT,
    "rollback_reason": TAG_ROLLBACK_REASON,
    "rollback_run_id": TAG_ROLLBACK_RUN_ID,
    "rollback_from_version": TAG_ROLLBACK_FROM,
}


def production_extra(mv: ModelVersion) -> dict[str, Any]:
    """What models/production/metadata.json says about how `mv` got there (from its tags)."""
    extra: dict[str, Any] = {"promotion": _promotion_info(mv)}
    if mv.tags.get(TAG_ROLLED_BACK_AT) and mv.tags.get(TAG_ROLLED_BACK_AT, "") >= mv.tags.get(
        TAG_PROMOTED_AT, ""
    ):
        extra["rollback"] = _tag_values(mv, _ROLLBACK_FIELDS)
    return extra


def sync_production_export(
    client: MlflowClient, tracking_uri: str, export_root: Path, name: str
) -> tuple[str | None, bool, Path | None]:
    """models/production as the production alias says: rewritten when stale, gone when no alias.
    Returns (production version or None, whether the folder changed, its archive folder)."""
    current = _alias_version(client, name, config.PRODUCTION_ALIAS)
    folder = production_dir_of(export_root)
    if current is None:
        existed = folder.exists()
        remove_export(folder)
        return None, existed, None
    archive = ensure_archive(client, tracking_uri, current, export_root, now_utc())
    if export_matches(folder, name, current.version):
        return str(current.version), False, archive
    _write_production(archive, production_extra(current), export_root)
    return str(current.version), True, archive


# --- the move of `production` (promote and rollback share it) ----------------------------------
def _check_text(what: str, value: str, limit: int, *, required: bool) -> None:
    if required and not value.strip():
        raise PromotionError(f"{what} is empty")
    if len(value) > limit:
        raise PromotionError(f"{what} is {len(value):,} characters; the limit is {limit:,}")


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


def move_forward(
    client: MlflowClient, tracking_uri: str, export_root: Path, intent: Intent
) -> Path:
    """Apply a promote/rollback intent: tags, alias (commit), archive, production, pruning."""
    data, name = intent.data, intent.name
    _apply_tags(client, name, data["tags_after"])
    client.set_registered_model_alias(name, config.PRODUCTION_ALIAS, data["to_version"])
    when = datetime.fromisoformat(data["at"])
    target = client.get_model_version(name, data["to_version"])
    archive = ensure_archive(client, tracking_uri, target, export_root, when)
    protect = [archive]
    if data["from_version"] is not None:
        leaving = client.get_model_version(name, data["from_version"])
        protect.append(ensure_archive(client, tracking_uri, leaving, export_root, when))
    if not export_matches(production_dir_of(export_root), name, data["to_version"]):
        _write_production(archive, production_extra(target), export_root)
    prune_archive(archive_root_of(export_root), keep=data["retention"], protect=protect)
    return archive


def move_back(client: MlflowClient, tracking_uri: str, export_root: Path, intent: Intent) -> None:
    """Undo a promote/rollback intent: alias back, tags as they were, production re-synced."""
    data, name = intent.data, intent.name
    if data["from_version"] is None:
        if _alias_version(client, name, config.PRODUCTION_ALIAS) is not None:
            client.delete_registered_model_alias(name, config.PRODUCTION_ALIAS)
    else:
        current = _alias_version(client, name, config.PRODUCTION_ALIAS)
        if current is None or str(current.version) != data["from_version"]:
            client.set_registered_model_alias(name, config.PRODUCTION_ALIAS, data["from_version"])
    _apply_tags(client, name, data["tags_before"])
    sync_production_export(client, tracking_uri, export_root, name)


def _run_move(client: MlflowClient, tracking_uri: str, export_root: Path, intent: Intent) -> Path:
    """Record the intent, move; on a failure move back (production unchanged) if possible."""
    try:
        write_intent(export_root, intent)
        archive = move_forward(client, tracking_uri, export_root, intent)
    except Exception as exc:  # a KeyboardInterrupt leaves the intent to the next command
        what = intent.op
        try:
            move_back(client, tracking_uri, export_root, intent)
        except Exception as undo_exc:
            raise UnfinishedOperation(
                f"{what} to v{intent.data['to_version']} failed ({type(exc).__name__}: {exc}) "
                f"and undoing it failed too ({type(undo_exc).__name__}: {undo_exc}); the intent "
                f"is kept in {intent_path(export_root)}: run `make repair` (the next registry "
                "command also finishes it)"
            ) from exc
        clear_intent(export_root)
        before = intent.data["from_version"]
        raise PromotionError(
            f"{what} to v{intent.data['to_version']} failed ({type(exc).__name__}: {exc}); it was "
            f"undone: production is unchanged ({'none' if before is None else 'v' + before})"
        ) from exc
    clear_intent(export_root)
    return archive


def _tags_before(
    client: MlflowClient, name: str, after: dict[str, dict[str, str | None]]
) -> dict[str, dict[str, str | None]]:
    before: dict[str, dict[str, str | None]] = {}
    for version, pairs in after.items():
        tags = client.get_model_version(name, version).tags
        before[version] = {key: tags.get(key) for key in pairs}
    return before


# --- promote -----------------------------------------------------------------------------------
def promote(
    *,
    tracking_uri: str,
    name: str,
    version: str | int,
    export_root: Path,
    actor: str,
    reason: str,
    run_id: str,
    override: bool = False,
    retention: int = config.ARCHIVE_RETENTION,
) -> PromotionRecord:
    """Make `version` production: alias, tags, archive copy, models/production, pruning.

    Inputs are validated before anything changes; the move runs under the registry lock behind
    an intent record (journal.py), after finishing any operation a dead process left. Calling it
    for the version that already holds the alias only re-syncs the export (repaired=True).
    """
    from mlplatform.registry import recovery  # recovery imports this module

    start = time.perf_counter()
    version, export_root = str(version), Path(export_root)
    _check_text("the promotion's actor", actor, config.MAX_ACTOR_CHARS, required=True)
    if override and not reason.strip():
        raise PromotionError("an override promotion needs a written reason")
    _check_text("the promotion reason", reason, config.MAX_REASON_CHARS, required=False)
    if retention < 1:
        raise PromotionError(f"retention must be at least 1, got {retention}")
    client = client_for(tracking_uri)
    with registry_lock(export_root):
        recovery.recover_locked(tracking_uri, name, export_root)
        mv = _usable_version(client, name, version, PromotionError)
        current = _alias_version(client, name, config.PRODUCTION_ALIAS)
        repaired = current is not None and str(current.version) == version
        if repaired:
            _, rewritten, archive = sync_production_export(client, tracking_uri, export_root, name)
            pruned: list[Path] = []
        else:
            now = now_utc()
            previous = None if current is None else str(current.version)
            after: dict[str, dict[str, str | None]] = {
                version: {
                    TAG_PROMOTED_BY: actor,
                    TAG_PROMOTED_AT: now.isoformat(),
                    TAG_PROMOTION_RUN_ID: run_id,
                    TAG_PROMOTION_REASON: reason,
                    TAG_OVERRIDE: "true" if override else "false",
                    TAG_PREVIOUS_PRODUCTION: previous or "",
                    config.ARCHIVED_TAG: None,
                }
            }
            if previous is not None:
                after[previous] = {config.ARCHIVED_TAG: "true", TAG_ARCHIVED_AT: now.isoformat()}
            intent = Intent(
                "promote",
                name,
                {
                    "from_version": previous,
                    "to_version": version,
                    "tags_after": after,
                    "tags_before": _tags_before(client, name, after),
                    "at": now.isoformat(),
                    "retention": retention,
                },
            )
            before_listing = set(list_archive(archive_root_of(export_root)))
            archive = _run_move(client, tracking_uri, export_root, intent)
            pruned = sorted(before_listing - set(list_archive(archive_root_of(export_root))))
            rewritten = True
        mv = client.get_model_version(name, version)
        info = _promotion_info(mv)
        previous_version = info["previous_production_version"]
        previous_mv = client.get_model_version(name, previous_version) if previous_version else None
    return PromotionRecord(
        name=name,
        version=version,
        semver=mv.tags.get(TAG_SEMVER, ""),
        model_uri=f"models:/{name}/{version}",
        previous_version=previous_version,
        previous_semver=previous_mv.tags.get(TAG_SEMVER) if previous_mv is not None else None,
        actor=info["promoted_by"],
        reason=info["promotion_reason"],
        run_id=info["promotion_run_id"],
        override=info["override"],
        promoted_at=info["promoted_at"],
        export_dir=str(production_dir_of(export_root)),
        archive_dir=str(archive),
        pruned=[str(p) for p in pruned],
        repaired=repaired,
        export_rewritten=rewritten,
        duration_s=time.perf_counter() - start,
    )


# --- rollback ----------------------------------------------------------------------------------
def was_production(mv: ModelVersion) -> bool:
    return bool(mv.tags.get(TAG_PROMOTED_AT) or mv.tags.get(TAG_ROLLED_BACK_AT))


def _previous_production(client: MlflowClient, current: ModelVersion) -> str | None:
    """The version `current` replaced, else the most recently archived other version."""
    recorded = current.tags.get(TAG_PREVIOUS_PRODUCTION)
    if recorded:
        return recorded
    archived = [
        mv
        for mv in all_versions(client, current.name)
        if mv.tags.get(config.ARCHIVED_TAG) == "true"
        and str(mv.version) != str(current.version)
        and TAG_PENDING not in mv.tags
    ]
    if not archived:
        return None
    best = max(archived, key=lambda mv: (mv.tags.get(TAG_ARCHIVED_AT, ""), int(mv.version)))
    return str(best.version)


def smoke_predict(booster: lgb.Booster) -> float:
    """Predict one all-zero row: proves the model parses into something that scores."""
    pred = np.asarray(booster.predict(np.zeros((1, booster.num_feature()), dtype=np.float64)))
    if pred.size < 1 or not np.all(np.isfinite(pred)):
        raise ExportIntegrityError("model predicts a non-finite value on a probe row")
    return float(pred.ravel()[0])


def check_rollback_target(
    client: MlflowClient, tracking_uri: str, export_root: Path, mv: ModelVersion
) -> Path:
    """The verified archive folder of `mv` (rebuilt from the registry when lost or corrupt),
    loaded and scored on one row; raises RollbackError saying what is wrong."""
    name, version = mv.name, str(mv.version)
    if not was_production(mv):
        raise RollbackError(
            f"refusing rollback to models:/{name}/{version}: it was never production; promote "
            "it instead (the promotion checks apply)"
        )
    try:
        archive = ensure_archive(client, tracking_uri, mv, export_root, now_utc())
        meta = verify_export(archive)
        smoke_predict(load_export_booster(archive))
    except (RegistryError, MlflowException, OSError, lgb.basic.LightGBMError) as exc:
        raise RollbackError(
            f"refusing rollback to models:/{name}/{version}: its archived export is not intact "
            f"and the registry cannot rebuild it: {exc}"
        ) from exc
    if meta.get("model_name") != name or meta.get("model_version") != version:
        raise RollbackError(f"refusing rollback: {archive} does not describe {name} v{version}")
    return archive


def _rollback_record(
    client: MlflowClient, export_root: Path, intent: Intent, archive: Path, start: float
) -> RollbackRecord:
    data, name = intent.data, intent.name
    target = client.get_model_version(name, data["to_version"])
    leaving = client.get_model_version(name, data["from_version"])
    info = _tag_values(target, _ROLLBACK_FIELDS)
    return RollbackRecord(
        name=name,
        from_version=data["from_version"],
        from_semver=leaving.tags.get(TAG_SEMVER, ""),
        to_version=data["to_version"],
        to_semver=target.tags.get(TAG_SEMVER, ""),
        actor=info["rolled_back_by"],
        reason=info["rollback_reason"],
        run_id=info["rollback_run_id"],
        rolled_back_at=info["rolled_back_at"],
        export_dir=str(production_dir_of(export_root)),
        archive_dir=str(archive),
        duration_s=time.perf_counter() - start,
        finished_after_crash=intent.pid != os.getpid() or intent.op != "rollback",
    )


def rollback(
    *,
    tracking_uri: str,
    name: str,
    to_version: str | int | None = None,
    export_root: Path,
    actor: str,
    reason: str,
    run_id: str,
) -> RollbackRecord:
    """Point `production` back at a version that was production before, after verifying it.

    `to_version=None` means the version the current production replaced. Inputs are checked,
    and the target's archive is verified (rebuilt from the registry if lost or corrupt), loaded
    and scored on one row, before anything moves; a refusal raises RollbackError and changes no
    alias or tag. If an earlier rollback with the same target died half way, this call finishes
    that one and returns it (finished_after_crash=True) instead of going one version further back.
    """
    from mlplatform.registry import recovery  # recovery imports this module

    start = time.perf_counter()
    export_root = Path(export_root)
    try:
        _check_text("the rollback's actor", actor, config.MAX_ACTOR_CHARS, required=True)
        _check_text("the rollback reason", reason, config.MAX_REASON_CHARS, required=False)
    except PromotionError as exc:
        raise RollbackError(str(exc)) from None
    if to_version is not None and not str(to_version).isdigit():
        raise RollbackError(f"version {to_version!r} is not a registry version number")
    client = client_for(tracking_uri)
    with registry_lock(export_root):
        for done in recovery.recover_locked(tracking_uri, name, export_root):
            if (
                done.intent.op == "rollback"
                and done.direction == "forward"
                and (to_version is None or str(to_version) == done.intent.data["to_version"])
            ):
                archive = find_archive(export_root, name, done.intent.data["to_version"])
                assert archive is not None
                return _rollback_record(client, export_root, done.intent, archive, start)
        current = _alias_version(client, name, config.PRODUCTION_ALIAS)
        if current is None:
            raise RollbackError(f"{name} has no production version to roll back from")
        target = (
            str(to_version) if to_version is not None else _previous_production(client, current)
        )
        if target is None:
            raise RollbackError(
                f"{name} v{current.version} records no previous production version; pass to_version"
            )
        if target == str(current.version):
            raise RollbackError(f"models:/{name}/{target} is already production")
        target_mv = _usable_version(client, name, target, RollbackError)
        check_rollback_target(client, tracking_uri, export_root, target_mv)
        now = now_utc()
        after: dict[str, dict[str, str | None]] = {
            target: {
                TAG_ROLLED_BACK_BY: actor,
                TAG_ROLLED_BACK_AT: now.isoformat(),
                TAG_ROLLBACK_REASON: reason,
                TAG_ROLLBACK_RUN_ID: run_id,
                TAG_ROLLBACK_FROM: str(current.version),
                config.ARCHIVED_TAG: None,
            },
            str(current.version): {config.ARCHIVED_TAG: "true", TAG_ARCHIVED_AT: now.isoformat()},
        }
        intent = Intent(
            "rollback",
            name,
            {
                "from_version": str(current.version),
                "to_version": target,
                "tags_after": after,
                "tags_before": _tags_before(client, name, after),
                "at": now.isoformat(),
                "retention": config.ARCHIVE_RETENTION,
            },
        )
        try:
            archive = _run_move(client, tracking_uri, export_root, intent)
        except PromotionError as exc:
            raise RollbackError(str(exc)) from exc
        return _rollback_record(client, export_root, intent, archive, start)
