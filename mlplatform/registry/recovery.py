"""Finish or undo what a dead process left, and make every export agree with the registry.

`recover_locked` resolves an unfinished intent (journal.py): a registration whose `staging` alias
moved is finished, else undone; a promotion or rollback whose `production` alias moved is moved
forward, else back (and back if forward cannot complete). Every registry command calls it first,
under the registry lock. `repair` (the CLI's `repair`, `make repair`, repair_export_job) does the
same and then rebuilds what the registry can vouch for: orphan versions deleted, `archived` tags
set, staging/production/archive exports rewritten when missing or corrupt, interrupted-write
leftovers removed, MLflow runs of dead processes ended KILLED. All steps are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from mlplatform import config
from mlplatform.registry.consistency import end_orphaned_runs, process_alive
from mlplatform.registry.export import (
    ExportIntegrityError,
    RegistryError,
    archive_registry_version,
    list_archive,
    remove_export,
    remove_leftovers,
    verify_export,
)
from mlplatform.registry.journal import Intent, clear_intent, read_intent, registry_lock
from mlplatform.registry.mlflow_registry import (
    TAG_PENDING,
    _alias_version,
    _version_exists,
    all_versions,
    client_for,
    finish_registration,
    now_utc,
    pending_versions,
    rebuild_alias_export,
    sync_staging_export,
    undo_registration,
)
from mlplatform.registry.promotion import (
    ARCHIVE_DIR,
    TAG_ARCHIVED_AT,
    _read_metadata_unverified,
    archive_root_of,
    move_back,
    move_forward,
    sync_production_export,
    was_production,
)


@dataclass(frozen=True)
class Recovered:
    """An unfinished operation this call resolved: `direction` is "forward" or "back"."""

    intent: Intent
    direction: str

    def describe(self) -> str:
        data = self.intent.data
        what = (
            f"registration of {data.get('semver')}"
            if self.intent.op == "register"
            else f"{self.intent.op} v{data.get('from_version')} -> v{data.get('to_version')}"
        )
        verb = "finished" if self.direction == "forward" else "undone"
        return f"unfinished {what} (started {self.intent.started_at}) {verb}"


def recover_locked(tracking_uri: str, name: str, export_root: Path) -> list[Recovered]:
    """Resolve the unfinished intent, if any (the caller holds the registry lock)."""
    intent = read_intent(export_root)
    if intent is None:
        return []
    client = client_for(tracking_uri)
    if intent.op == "register":
        staging = _alias_version(client, intent.name, config.STAGING_ALIAS)
        moved = staging is not None and (
            staging.tags.get(TAG_PENDING) == intent.token
            or str(staging.version) == str(intent.data.get("version"))
        )
        if moved:
            finish_registration(client, tracking_uri, Path(export_root), intent)
            direction = "forward"
        else:
            undo_registration(client, tracking_uri, Path(export_root), intent)
            direction = "back"
    elif intent.op in ("promote", "rollback"):
        current = _alias_version(client, intent.name, config.PRODUCTION_ALIAS)
        direction = "back"
        if current is not None and str(current.version) == intent.data["to_version"]:
            try:
                move_forward(client, tracking_uri, Path(export_root), intent)
                direction = "forward"
            except (RegistryError, MlflowException, OSError):
                direction = "back"
        if direction == "back":
            move_back(client, tracking_uri, Path(export_root), intent)
    else:
        raise RegistryError(f"unknown operation {intent.op!r} in the intent record")
    clear_intent(export_root)
    return [Recovered(intent, direction)]


@dataclass
class RepairReport:
    recovered: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    tags_fixed: list[str] = field(default_factory=list)
    exports_rebuilt: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    runs_ended: list[str] = field(default_factory=list)
    production_version: str | None = None

    @property
    def changed(self) -> bool:
        return any(
            (
                self.recovered,
                self.orphans_deleted,
                self.tags_fixed,
                self.exports_rebuilt,
                self.removed,
                self.runs_ended,
            )
        )

    def lines(self) -> list[str]:
        out = [f"production: {self.production_version or 'none'}"]
        for label, items in (
            ("recovered", self.recovered),
            ("orphan versions deleted", self.orphans_deleted),
            ("tags fixed", self.tags_fixed),
            ("exports rebuilt from the registry", self.exports_rebuilt),
            ("removed", self.removed),
            ("MLflow runs of dead processes ended KILLED", self.runs_ended),
        ):
            if items:
                out.append(f"{label}: {', '.join(items)}")
        return out if self.changed else [*out, "everything was already consistent"]


def repair(
    *,
    tracking_uri: str,
    name: str = config.MODEL_NAME,
    export_root: Path,
    run_alive: Callable[[Run], bool] = process_alive,
) -> RepairReport:
    """Bring registry, aliases, tags and every export into agreement; report what changed."""
    export_root = Path(export_root)
    report = RepairReport()
    client = client_for(tracking_uri)
    with registry_lock(export_root):
        report.recovered = [r.describe() for r in recover_locked(tracking_uri, name, export_root)]
        for version in pending_versions(client, name):
            client.delete_model_version(name, version)
            report.orphans_deleted.append(f"v{version}")
        production = _alias_version(client, name, config.PRODUCTION_ALIAS)
        report.production_version = None if production is None else str(production.version)
        for mv in all_versions(client, name):
            is_production = production is not None and mv.version == production.version
            archived = mv.tags.get(config.ARCHIVED_TAG)
            if is_production and archived is not None:
                client.delete_model_version_tag(name, mv.version, config.ARCHIVED_TAG)
                report.tags_fixed.append(f"v{mv.version}: archived removed (it is production)")
            elif not is_production and was_production(mv) and archived != "true":
                client.set_model_version_tag(name, mv.version, config.ARCHIVED_TAG, "true")
                client.set_model_version_tag(
                    name, mv.version, TAG_ARCHIVED_AT, now_utc().isoformat()
                )
                report.tags_fixed.append(f"v{mv.version}: archived=true")
        if sync_staging_export(client, tracking_uri, export_root, name):
            report.exports_rebuilt.append("staging")
        report.exports_rebuilt += _repair_archive(client, tracking_uri, name, export_root, report)
        _, rewritten, _ = sync_production_export(client, tracking_uri, export_root, name)
        if rewritten:
            report.exports_rebuilt.append(f"production ({report.production_version or 'removed'})")
        for folder in (export_root, archive_root_of(export_root)):
            report.removed += [str(p) for p in remove_leftovers(folder)]
    report.runs_ended = end_orphaned_runs(tracking_uri, run_alive)
    return report


def _repair_archive(
    client: MlflowClient, tracking_uri: str, name: str, export_root: Path, report: RepairReport
) -> list[str]:
    """Rewrite corrupt archive folders from the registry; drop those naming no registry version."""
    rebuilt = []
    for folder in list_archive(archive_root_of(export_root)):
        try:
            verify_export(folder)
            continue
        except ExportIntegrityError:
            pass
        meta = _read_metadata_unverified(folder) or {}
        version = archive_registry_version(folder) or meta.get("model_version")
        if version and _version_exists(client, name, version):
            mv = client.get_model_version(name, str(version))
            rebuild_alias_export(client, tracking_uri, mv, folder, alias=ARCHIVE_DIR)
            rebuilt.append(f"archive {folder.name}")
        else:
            remove_export(folder)
            report.removed.append(str(folder))
    return rebuilt
