"""Promotion and rollback: move the `production` alias and keep models/ in step with it.

The caller (the production_model asset, the rollback job) decides *whether* to promote; these
functions do the move. Every alias change and export write happens under the exclusive lock
export_root/.lock, so two promotions racing end with one production version whose export
matches it.

Order of a promotion, and what a crash at each point leaves:
1. tag the new version promoted_by/at, promotion_run_id/reason, override and
   previous_production_version (undone if the alias move fails);
2. move the alias `production` — the commit point, one upsert in MLflow's SQL store;
3. tag the version leaving production `archived=true` + archived_at;
4. write models/archive/v<semver>_<date>/ for the promoted version (unless an intact copy of it
   exists) and for the leaving version if it has none, then models/production/;
5. prune the archive to `retention` folders (the two involved are never pruned).
A crash after step 2 leaves the alias right and the export stale: running `promote` again for
the same version (or `repair_production_export`) finishes steps 3–5 from the recorded tags.

Archive policy: every promoted version gets an archive copy when it is promoted (dated that
day), so rollback can verify the exact files it will serve; the registry version leaving
production is tagged archived. Registry versions are never deleted, only old archive folders.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
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
    export_lock,
    list_archive,
    load_export_booster,
    prune_archive,
    verify_export,
    write_export,
)
from mlplatform.registry.mlflow_registry import (
    TAG_SEMVER,
    _alias_version,
    client_for,
    download_model_metadata,
    export_metadata,
    now_utc,
    read_model_text,
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

Fault = Callable[[str], None]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _no_fault(_step: str) -> None:
    return None


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
    """Newest archive folder whose metadata names this model version (not verified here)."""
    for folder in reversed(list_archive(archive_root_of(export_root))):
        meta = _read_metadata_unverified(folder)
        if meta and meta.get("model_name") == name and meta.get("model_version") == str(version):
            return folder
    return None


def _intact(folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        verify_export(folder)
    except ExportIntegrityError:
        return False
    return True


def _ensure_archive(
    client: MlflowClient, tracking_uri: str, mv: ModelVersion, export_root: Path, when: datetime
) -> Path:
    """An intact archive copy of `mv`, written from the registry if none exists."""
    existing = find_archive(export_root, mv.name, mv.version)
    if _intact(existing):
        assert existing is not None
        return existing
    text = read_model_text(tracking_uri, mv.name, mv.version)
    lgb.Booster(model_str=text)  # parses, or raises before anything is written
    try:
        candidate_meta = download_model_metadata(tracking_uri, mv.name, mv.version)
    except Exception:  # a version registered without metadata still archives
        candidate_meta = {}
    dest = archive_root_of(export_root) / archive_dirname(mv.tags.get(TAG_SEMVER, "0.0.0"), when)
    return write_export(
        dest,
        model_text=text,
        metadata=export_metadata(mv, alias=ARCHIVE_DIR, metadata=candidate_meta),
    )


def _write_production(source: Path, extra: dict[str, Any], export_root: Path) -> Path:
    """models/production from a verified archive folder (same model.txt bytes)."""
    meta = verify_export(source)
    meta = {**meta, "alias": config.PRODUCTION_ALIAS, "exported_at": now_utc().isoformat(), **extra}
    return write_export(
        production_dir_of(export_root),
        model_text=(source / MODEL_FILE).read_text(encoding="utf-8"),
        metadata=meta,
    )


def _production_export_matches(export_root: Path, name: str, version: str) -> bool:
    try:
        meta = verify_export(production_dir_of(export_root))
    except ExportIntegrityError:
        return False
    return meta.get("model_name") == name and meta.get("model_version") == str(version)


def _set_tags(client: MlflowClient, mv: ModelVersion, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(mv.name, str(mv.version), key, value)


def _restore_tags(client: MlflowClient, mv: ModelVersion, before: dict[str, str | None]) -> None:
    for key, value in before.items():
        if value is None:
            with contextlib.suppress(MlflowException):
                client.delete_model_version_tag(mv.name, str(mv.version), key)
        else:
            client.set_model_version_tag(mv.name, str(mv.version), key, value)


def _promotion_info(mv: ModelVersion) -> dict[str, Any]:
    tags = mv.tags
    return {
        "promoted_by": tags.get(TAG_PROMOTED_BY, ""),
        "promoted_at": tags.get(TAG_PROMOTED_AT, ""),
        "promotion_run_id": tags.get(TAG_PROMOTION_RUN_ID, ""),
        "promotion_reason": tags.get(TAG_PROMOTION_REASON, ""),
        "override": tags.get(TAG_OVERRIDE, "false") == "true",
        "previous_production_version": tags.get(TAG_PREVIOUS_PRODUCTION) or None,
    }


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
    fault: Fault | None = None,
) -> PromotionRecord:
    """Make `version` production: alias, tags, archive copy, models/production, pruning.

    Re-running it for the version that already holds the alias repairs whatever a crash left
    undone (archive tag, archive copy, export) and changes nothing else (repaired=True).
    """
    start = time.perf_counter()
    fault = fault or _no_fault
    version = str(version)
    export_root = Path(export_root)
    if not actor.strip():
        raise PromotionError("promotion needs an actor (who is promoting)")
    if override and not reason.strip():
        raise PromotionError("an override promotion needs a written reason")
    client = client_for(tracking_uri)
    with export_lock(export_root):
        try:
            mv = client.get_model_version(name, version)
        except MlflowException as exc:
            raise PromotionError(f"models:/{name}/{version} does not exist: {exc}") from exc
        if mv.status != "READY":
            raise PromotionError(f"models:/{name}/{version} is {mv.status}, not READY")
        current = _alias_version(client, name, config.PRODUCTION_ALIAS)
        now = now_utc()
        repaired = current is not None and str(current.version) == version
        if not repaired:
            previous_version = str(current.version) if current is not None else None
            new_tags = {
                TAG_PROMOTED_BY: actor,
                TAG_PROMOTED_AT: now.isoformat(),
                TAG_PROMOTION_RUN_ID: run_id,
                TAG_PROMOTION_REASON: reason,
                TAG_OVERRIDE: "true" if override else "false",
                TAG_PREVIOUS_PRODUCTION: previous_version or "",
            }
            before = {key: mv.tags.get(key) for key in new_tags}
            try:
                _set_tags(client, mv, new_tags)
                fault("after_tags")
                client.set_registered_model_alias(name, config.PRODUCTION_ALIAS, version)
            except BaseException as exc:
                moved = _alias_version(client, name, config.PRODUCTION_ALIAS)
                if moved is not None and str(moved.version) == version:
                    # The upsert landed before the error: the promotion is committed; finish it
                    # on a re-run rather than guess.
                    exc.add_note("the production alias moved; re-run promote to finish")
                else:
                    _restore_tags(client, mv, before)
                raise
        fault("after_alias")
        mv = client.get_model_version(name, version)
        info = _promotion_info(mv)
        previous_version = info["previous_production_version"]
        previous = client.get_model_version(name, previous_version) if previous_version else None

        # Steps 3-5: idempotent, so a re-run after a crash completes them.
        if (
            previous is not None
            and previous.version != mv.version
            and previous.tags.get(config.ARCHIVED_TAG) != "true"
        ):
            _set_tags(
                client, previous, {config.ARCHIVED_TAG: "true", TAG_ARCHIVED_AT: now.isoformat()}
            )
        if mv.tags.get(config.ARCHIVED_TAG) is not None:
            client.delete_model_version_tag(name, version, config.ARCHIVED_TAG)
        archive = _ensure_archive(client, tracking_uri, mv, export_root, now)
        protect = [archive]
        if previous is not None:
            protect.append(_ensure_archive(client, tracking_uri, previous, export_root, now))
        fault("after_archive")
        rewrite = not (repaired and _production_export_matches(export_root, name, version))
        if rewrite:
            _write_production(archive, {"promotion": info}, export_root)
        pruned = prune_archive(archive_root_of(export_root), keep=retention, protect=protect)
    return PromotionRecord(
        name=name,
        version=version,
        semver=mv.tags.get(TAG_SEMVER, ""),
        model_uri=f"models:/{name}/{version}",
        previous_version=previous_version,
        previous_semver=previous.tags.get(TAG_SEMVER) if previous is not None else None,
        actor=info["promoted_by"],
        reason=info["promotion_reason"],
        run_id=info["promotion_run_id"],
        override=info["override"],
        promoted_at=info["promoted_at"],
        export_dir=str(production_dir_of(export_root)),
        archive_dir=str(archive),
        pruned=[str(p) for p in pruned],
        repaired=repaired,
        export_rewritten=rewrite,
        duration_s=time.perf_counter() - start,
    )


# --- rollback ----------------------------------------------------------------------------------
def _previous_production(client: MlflowClient, current: ModelVersion) -> str | None:
    """The version `current` replaced, else the most recently archived other version."""
    recorded = current.tags.get(TAG_PREVIOUS_PRODUCTION)
    if recorded:
        return recorded
    versions = client.search_model_versions(f"name = '{current.name}'")
    archived = [
        mv
        for mv in versions
        if mv.tags.get(config.ARCHIVED_TAG) == "true" and str(mv.version) != str(current.version)
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


def check_rollback_target(export_root: Path, name: str, version: str) -> Path:
    """The verified archive folder of `version`; raises RollbackError saying what is wrong."""
    archive = find_archive(export_root, name, version)
    if archive is None:
        raise RollbackError(
            f"refusing rollback to models:/{name}/{version}: no archived export for it under "
            f"{archive_root_of(export_root)}"
        )
    try:
        meta = verify_export(archive)
        smoke_predict(load_export_booster(archive))
    except (ExportIntegrityError, lgb.basic.LightGBMError) as exc:
        raise RollbackError(
            f"refusing rollback to models:/{name}/{version}: archive {archive.name} is not "
            f"intact: {exc}"
        ) from exc
    if meta.get("model_name") != name or meta.get("model_version") != str(version):
        raise RollbackError(f"refusing rollback: {archive} does not describe {name} v{version}")
    return archive


def rollback(
    *,
    tracking_uri: str,
    name: str,
    to_version: str | int | None = None,
    export_root: Path,
    actor: str,
    reason: str,
    run_id: str,
    fault: Fault | None = None,
) -> RollbackRecord:
    """Point `production` back at an archived version after verifying its files.

    `to_version=None` means the version the current production replaced. The target's archive
    checksums are verified and the model is loaded and scored on one row *before* anything
    changes; a refusal raises RollbackError and leaves alias, tags and export untouched.
    Served from the archive copy: no MLflow artifact download.
    """
    start = time.perf_counter()
    fault = fault or _no_fault
    export_root = Path(export_root)
    if not actor.strip():
        raise RollbackError("rollback needs an actor (who is rolling back)")
    client = client_for(tracking_uri)
    with export_lock(export_root):
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
        try:
            target_mv = client.get_model_version(name, target)
        except MlflowException as exc:
            raise RollbackError(f"models:/{name}/{target} does not exist: {exc}") from exc
        archive = check_rollback_target(export_root, name, target)

        now = now_utc()
        client.set_registered_model_alias(name, config.PRODUCTION_ALIAS, target)  # commit point
        fault("after_alias")
        rollback_info = {
            "rolled_back_by": actor,
            "rolled_back_at": now.isoformat(),
            "rollback_reason": reason,
            "rollback_run_id": run_id,
            "rollback_from_version": str(current.version),
        }
        _set_tags(
            client,
            target_mv,
            {
                TAG_ROLLED_BACK_BY: actor,
                TAG_ROLLED_BACK_AT: now.isoformat(),
                TAG_ROLLBACK_REASON: reason,
                TAG_ROLLBACK_RUN_ID: run_id,
                TAG_ROLLBACK_FROM: str(current.version),
            },
        )
        if target_mv.tags.get(config.ARCHIVED_TAG) is not None:
            client.delete_model_version_tag(name, target, config.ARCHIVED_TAG)
        _set_tags(client, current, {config.ARCHIVED_TAG: "true", TAG_ARCHIVED_AT: now.isoformat()})
        _write_production(archive, {"rollback": rollback_info}, export_root)
    return RollbackRecord(
        name=name,
        from_version=str(current.version),
        from_semver=current.tags.get(TAG_SEMVER, ""),
        to_version=target,
        to_semver=target_mv.tags.get(TAG_SEMVER, ""),
        actor=actor,
        reason=reason,
        run_id=run_id,
        rolled_back_at=now.isoformat(),
        export_dir=str(production_dir_of(export_root)),
        archive_dir=str(archive),
        duration_s=time.perf_counter() - start,
    )


def repair_production_export(
    *, tracking_uri: str, name: str = config.MODEL_NAME, export_root: Path
) -> dict[str, Any]:
    """Make models/production match the production alias (after a crash); report what it did.

    Uses the intact archive copy when there is one, else writes it from the registry first.
    """
    export_root = Path(export_root)
    client = client_for(tracking_uri)
    with export_lock(export_root):
        current = _alias_version(client, name, config.PRODUCTION_ALIAS)
        if current is None:
            return {"version": None, "rewritten": False, "source": None}
        version = str(current.version)
        if _production_export_matches(export_root, name, version):
            return {"version": version, "rewritten": False, "source": None}
        existing = find_archive(export_root, name, version)
        source = "archive" if _intact(existing) else "registry"
        archive = _ensure_archive(client, tracking_uri, current, export_root, now_utc())
        extra: dict[str, Any] = {"promotion": _promotion_info(current), "repaired_at": now_utc()}
        if current.tags.get(TAG_ROLLED_BACK_AT):
            extra["rollback"] = {
                "rolled_back_by": current.tags.get(TAG_ROLLED_BACK_BY, ""),
                "rolled_back_at": current.tags.get(TAG_ROLLED_BACK_AT, ""),
                "rollback_reason": current.tags.get(TAG_ROLLBACK_REASON, ""),
                "rollback_run_id": current.tags.get(TAG_ROLLBACK_RUN_ID, ""),
                "rollback_from_version": current.tags.get(TAG_ROLLBACK_FROM, ""),
            }
        _write_production(archive, extra, export_root)
        return {"version": version, "rewritten": True, "source": source, "archive": str(archive)}
