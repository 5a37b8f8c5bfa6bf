"""Does the registry agree with itself and with models/? The checker the tests and `repair`
share; it changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run

from mlplatform import config
from mlplatform.registry import export
from mlplatform.registry.errors import RegistryError
from mlplatform.registry.journal import read_intent
from mlplatform.registry.projection import ALIASES, archived_versions, matches
from mlplatform.registry.recovery import pending_versions, registry_losses
from mlplatform.registry.runs import dead_runs, process_alive
from mlplatform.registry.store import (
    TAG_ARCHIVED,
    TAG_PENDING,
    Registry,
    alias_version,
    all_versions,
    was_production,
)


@dataclass(frozen=True)
class Problem:
    """One disagreement: `what` it concerns (an alias, export, tag, run) and `detail`."""

    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}"


def check_consistency(
    registry: Registry, run_alive: Callable[[Run], bool] = process_alive
) -> list[Problem]:
    """Every way registry, aliases, tags, exports and MLflow runs disagree; [] when consistent."""
    client, name, root = registry.client, registry.name, Path(registry.export_root)
    problems: list[Problem] = []
    try:
        intent = read_intent(client, name)
    except RegistryError as exc:
        problems.append(Problem("intent", str(exc)))
        intent = None
    if intent is not None:
        problems.append(Problem("intent", f"unfinished {intent.describe()}"))
    problems += [
        Problem(f"v{v}", "orphan: an unfinished registration")
        for v in pending_versions(client, name)
    ]
    production = None
    for alias in ALIASES:
        mv = alias_version(client, name, alias)
        link = root / alias
        if alias == config.PRODUCTION_ALIAS:
            production = mv
        if mv is None:
            if link.exists() or link.is_symlink():
                problems.append(Problem(f"models/{alias}", "exists but the alias is not set"))
            continue
        if TAG_PENDING in mv.tags:
            problems.append(Problem(f"alias {alias}", f"points at orphan v{mv.version}"))
        if not matches(link, mv, alias):
            problems.append(Problem(f"models/{alias}", f"missing, corrupt or not v{mv.version}"))
    for mv in all_versions(client, name):
        archived = mv.tags.get(TAG_ARCHIVED)
        if production is not None and str(mv.version) == str(production.version):
            if archived is not None:
                problems.append(Problem(f"v{mv.version}", "is production but tagged archived"))
        elif was_production(mv) and archived != "true":
            problems.append(Problem(f"v{mv.version}", "left production but is not tagged archived"))
    wanted = {str(mv.version): mv for mv in archived_versions(client, name, registry.retention)}
    found: set[str] = set()
    for folder in export.list_archive(root / export.ARCHIVE_DIR):
        try:
            version = str(export.verify_export(folder).get("model_version"))
        except export.ExportIntegrityError as exc:
            problems.append(Problem(f"archive {folder.name}", str(exc)))
            continue
        if version not in wanted:
            problems.append(Problem(f"archive {folder.name}", f"v{version} is not one to keep"))
        elif not matches(folder, wanted[version], export.ARCHIVE_DIR):
            problems.append(Problem(f"archive {folder.name}", f"not the registered v{version}"))
        found.add(version)
    for version in sorted(set(wanted) - found, key=int):
        problems.append(Problem("archive", f"no copy of v{version}"))
    published = {(root / alias).resolve() for alias in ALIASES}
    for path in export.leftovers(root, published):
        problems.append(Problem(str(path), "leftover of an interrupted write"))
    problems += [Problem("registry", loss) for loss in registry_losses(client, registry)]
    for run in dead_runs(registry.tracking_uri, run_alive):
        problems.append(Problem(f"MLflow run {run.info.run_id}", "RUNNING, its process is gone"))
    return problems
