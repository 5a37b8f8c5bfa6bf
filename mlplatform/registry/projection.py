"""models/ as a projection of the registry: the aliases are the truth, the export follows them.

`project` makes `models/production`, `models/staging` and `models/archive/` say what the
registry says, idempotently: an export that already verifies and names the right version is left
alone, anything else is rebuilt from the version's registered files, or, when those are lost,
from an intact export copy of the same version (checked against the checksum recorded at
registration). A version whose files are lost everywhere is named in `losses`, never raised:
promoting or rolling back to a healthy version must not depend on an unreadable one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlplatform import config
from mlplatform.registry import export
from mlplatform.registry.audit import recorded_moves
from mlplatform.registry.card import CARD_FILE, card_tags, publish_card, render, walk_forward
from mlplatform.registry.errors import ArtifactLost
from mlplatform.registry.store import (
    EXTRA_FILES_DIR,
    MODEL_METADATA_FILE,
    TAG_MODEL_SHA256,
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
    _download,
    alias_version,
    all_versions,
    model_text,
    now_utc,
    production_since,
    sha256_text,
    was_production,
)

ALIASES = (config.PRODUCTION_ALIAS, config.STAGING_ALIAS)


@dataclass
class Projection:
    """What one pass changed, and each version whose files could not be found anywhere."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # exports kept off an alias moved by hand
    # every export now in place, whose model card the registry keeps a copy of
    exported: list[tuple[ModelVersion, Path]] = field(default_factory=list)


def _promotion(mv: ModelVersion) -> dict[str, Any]:
    return {
        "promoted_by": mv.tags.get(TAG_PROMOTED_BY, ""),
        "promoted_at": mv.tags.get(TAG_PROMOTED_AT, ""),
        "promotion_run_id": mv.tags.get(TAG_PROMOTION_RUN_ID, ""),
        "promotion_reason": mv.tags.get(TAG_PROMOTION_REASON, ""),
        "override": mv.tags.get(TAG_OVERRIDE, "false") == "true",
        "previous_production_version": mv.tags.get(TAG_PREVIOUS_PRODUCTION) or None,
    }


def _rollback(mv: ModelVersion) -> dict[str, Any] | None:
    """How `mv` last came back into production, when its latest move was a rollback."""
    at = mv.tags.get(TAG_ROLLED_BACK_AT, "")
    if not at or at < mv.tags.get(TAG_PROMOTED_AT, ""):
        return None
    return {
        "rolled_back_by": mv.tags.get(TAG_ROLLED_BACK_BY, ""),
        "rolled_back_at": at,
        "rollback_reason": mv.tags.get(TAG_ROLLBACK_REASON, ""),
        "rollback_run_id": mv.tags.get(TAG_ROLLBACK_RUN_ID, ""),
        "rollback_from_version": mv.tags.get(TAG_ROLLBACK_FROM, ""),
    }


class Sources:
    """Where a version's files come from: the registry first, then intact export copies."""

    def __init__(
        self, client: MlflowClient, tracking_uri: str, name: str, export_root: Path
    ) -> None:
        self.client, self.tracking_uri, self.export_root = client, tracking_uri, export_root
        self.name = name
        self.texts: dict[str, str | None] = {}
        self.lost: dict[str, str] = {}

    def _copies(self) -> list[Path]:
        links = [self.export_root / alias for alias in ALIASES]
        return [p for p in links if p.exists()] + export.list_archive(
            self.export_root / export.ARCHIVE_DIR
        )

    def text(self, mv: ModelVersion) -> str | None:
        version = str(mv.version)
        if version not in self.texts:
            try:
                self.texts[version] = model_text(self.client, self.tracking_uri, mv)
            except ArtifactLost as exc:
                self.texts[version] = self._from_copies(mv)
                if self.texts[version] is None:
                    self.lost[version] = f"v{version}: {exc}; no intact copy in {self.export_root}"
        return self.texts[version]

    def _from_copies(self, mv: ModelVersion) -> str | None:
        expected = mv.tags.get(TAG_MODEL_SHA256)
        for folder in self._copies():
            text = export.intact_model(folder, mv.name, str(mv.version))
            if text is not None and (expected is None or sha256_text(text) == expected):
                return text
        return None

    def metadata(self, mv: ModelVersion) -> dict[str, Any]:
        """The metadata.json registered with the version ({} when lost or never written)."""
        try:
            raw = _download(
                self.client, self.tracking_uri, mv, f"{EXTRA_FILES_DIR}/{MODEL_METADATA_FILE}"
            )
        except ArtifactLost:
            return {}
        return json.loads(raw)


def export_metadata(sources: Sources, mv: ModelVersion, alias: str) -> dict[str, Any]:
    """metadata.json of an export: what was registered, plus the registry facts naming it."""
    figures = walk_forward(mv.tags)
    own = figures.pop("staging", {})  # the version's figures when it was the candidate
    meta = {
        **sources.metadata(mv),
        "trained_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
            timespec="seconds"
        ),
        "metrics": own,
        "accuracy_of_contenders": {
            model: values["accuracy"] for model, values in figures.items() if "accuracy" in values
        },
        "model_name": mv.name,
        "model_version": str(mv.version),
        "semver": mv.tags.get(TAG_SEMVER, ""),
        "model_uri": f"models:/{mv.name}/{mv.version}",
        "mlflow_run_id": mv.run_id,
        "alias": alias,
        "tags": {k: v for k, v in mv.tags.items() if k != TAG_PENDING},
        "exported_at": now_utc().isoformat(),
    }
    if alias == config.PRODUCTION_ALIAS:
        meta["promotion"] = _promotion(mv)
        rollback = _rollback(mv)
        if rollback:
            meta["rollback"] = rollback
    return meta


def card_of(sources: Sources, mv: ModelVersion) -> str:
    return render(sources.metadata(mv), mv.tags, mv.name, str(mv.version))


def _publish(
    sources: Sources,
    mv: ModelVersion,
    alias: str,
    text: str,
    write: Callable[..., Path],
    dest: Path,
    out: Projection,
) -> None:
    """Write an export of `mv` at `dest` (export.publish or export.write_archive) with its card."""
    write(dest, text, export_metadata(sources, mv, alias), card=card_of(sources, mv))
    out.exported.append((mv, dest))


def matches(folder: Path, mv: ModelVersion, alias: str) -> bool:
    """The folder verifies, names this version and alias, holds its registered bytes and a card
    of what the registry now knows about it."""
    try:
        meta = export.verify_export(folder)
    except export.ExportIntegrityError:
        return False
    if (meta.get("model_name"), str(meta.get("model_version"))) != (mv.name, str(mv.version)):
        return False
    if meta.get("alias") != alias:
        return False
    if not (folder / CARD_FILE).is_file():
        return False
    if card_tags(meta.get("tags", {})) != card_tags(mv.tags):
        return False
    expected = mv.tags.get(TAG_MODEL_SHA256)
    if expected is None:  # registered before checksums were recorded: it must at least parse
        return export.intact_model(folder, mv.name, str(mv.version)) is not None
    text = (folder / export.MODEL_FILE).read_text(encoding="utf-8")
    return sha256_text(text) == expected


def served_production(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version models/production serves: where the production alias points, unless someone
    moved the alias outside the platform after its last recorded promotion or rollback; then
    that move's version keeps serving (a click in MLflow's UI does not get past the gate), and
    the alias check tells a person."""
    alias = alias_version(client, name, config.PRODUCTION_ALIAS)
    versions = {str(mv.version): mv for mv in all_versions(client, name)}
    moves = recorded_moves({version: dict(mv.tags) for version, mv in versions.items()})
    if not moves or moves[-1].version not in versions:
        return alias
    if alias is not None and str(alias.version) == moves[-1].version:
        return alias
    return versions[moves[-1].version]


def _project_alias(
    client: MlflowClient, sources: Sources, export_root: Path, alias: str, out: Projection
) -> None:
    link = export_root / alias
    mv = alias_version(client, sources.name, alias)
    if alias == config.PRODUCTION_ALIAS:
        served = served_production(client, sources.name)
        if served is not None and (mv is None or served.version != mv.version):
            out.held.append(
                f"production alias {'removed' if mv is None else f'moved to v{mv.version}'} "
                f"outside the platform: models/production keeps v{served.version}, the "
                "platform's last move"
            )
        mv = served
    if mv is None:
        if export.unpublish(link):
            out.removed.append(f"{alias} (its alias is unset)")
        return
    if link.exists() and matches(link, mv, alias):
        out.exported.append((mv, link))
        return
    text = sources.text(mv)
    if text is None:
        out.losses.append(f"{alias} {sources.lost[str(mv.version)]}")
        return
    _publish(sources, mv, alias, text, export.publish, link, out)
    out.changed.append(f"{alias} (v{mv.version})")


def archived_versions(client: MlflowClient, name: str, retention: int) -> list[ModelVersion]:
    """The versions models/archive keeps: the `retention` most recently in production (the
    current one and the one before it always among them), newest first."""
    was = [mv for mv in all_versions(client, name) if was_production(mv)]
    was.sort(key=lambda mv: (production_since(mv), int(mv.version)), reverse=True)
    production = alias_version(client, name, config.PRODUCTION_ALIAS)
    keep = was[: max(retention, 1)]
    if production is not None:
        previous = production.tags.get(TAG_PREVIOUS_PRODUCTION)
        for mv in was:
            if str(mv.version) in {str(production.version), previous} and mv not in keep:
                keep.append(mv)
    return keep


def _archive_folder(export_root: Path, mv: ModelVersion) -> Path | None:
    """The newest archive folder of this version, by its name or its metadata (unverified)."""
    for folder in reversed(export.list_archive(export_root / export.ARCHIVE_DIR)):
        if export.archive_registry_version(folder) == str(mv.version):
            return folder
        try:
            meta = json.loads((folder / export.METADATA_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        named = isinstance(meta, dict) and meta.get("model_name") == mv.name
        if named and str(meta.get("model_version")) == str(mv.version):
            return folder
    return None


def _project_archive(
    client: MlflowClient, sources: Sources, export_root: Path, retention: int, out: Projection
) -> None:
    root = export_root / export.ARCHIVE_DIR
    wanted = archived_versions(client, sources.name, retention)
    kept: set[Path] = set()
    for mv in wanted:
        folder = _archive_folder(export_root, mv)
        if folder is not None and matches(folder, mv, export.ARCHIVE_DIR):
            out.exported.append((mv, folder))
            kept.add(folder)
            continue
        text = sources.text(mv)
        if text is None:
            out.losses.append(f"archive {sources.lost[str(mv.version)]}")
            if folder is not None:
                kept.add(folder)  # the damaged copy stays as evidence until a person acts
            continue
        day = (production_since(mv) or now_utc().isoformat())[:10]
        dest = folder or root / export.archive_dirname(
            mv.tags.get(TAG_SEMVER, "0.0.0"), day, mv.version
        )
        _publish(sources, mv, export.ARCHIVE_DIR, text, export.write_archive, dest, out)
        kept.add(dest)
        out.changed.append(f"archive {dest.name}")
    for folder in export.list_archive(root):
        if folder not in kept:
            export.remove(folder)
            out.removed.append(f"archive {folder.name}")


def project(
    client: MlflowClient, tracking_uri: str, name: str, export_root: Path, retention: int
) -> Projection:
    """Make every export say what the registry says (see the module docstring)."""
    out = Projection()
    sources = Sources(client, tracking_uri, name, export_root)
    _project_archive(client, sources, export_root, retention, out)
    for alias in ALIASES:
        _project_alias(client, sources, export_root, alias, out)
    published = {(export_root / alias).resolve() for alias in ALIASES}
    for path in export.leftovers(export_root, published):
        export.remove(path)
        out.removed.append(str(path))
    # Last, so an operation undone after a failure above never left a card of its own behind.
    for mv, folder in out.exported:
        publish_card(client, mv, (folder / CARD_FILE).read_text(encoding="utf-8"))
    return out
