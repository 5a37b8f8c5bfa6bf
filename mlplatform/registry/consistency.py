"""Does the registry agree with itself and with models/? The checker the tests and `repair` share.

Also the rule for MLflow runs left RUNNING by a dead process: each run the platform starts is
tagged with its process (owner_tags); a RUNNING run whose process is gone on this host is over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run, RunStatus

from mlplatform import config
from mlplatform.registry.export import (
    ExportIntegrityError,
    archive_registry_version,
    export_matches,
    leftovers,
    list_archive,
    verify_export,
)
from mlplatform.registry.journal import INTENT_FILE, read_intent
from mlplatform.registry.mlflow_registry import (
    TAG_PENDING,
    _alias_version,
    all_versions,
    client_for,
)
from mlplatform.registry.promotion import archive_root_of, was_production

OWNER_PID_TAG = "mlplatform.pid"
OWNER_HOST_TAG = "mlplatform.host"


@dataclass(frozen=True)
class Problem:
    """One disagreement: `what` it concerns (an alias, export, tag, run) and `detail`."""

    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}"


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs an MLflow run, so a later process can tell it died."""
    return {OWNER_PID_TAG: str(os.getpid()), OWNER_HOST_TAG: socket.gethostname()}


def process_gone(host: str | None, pid: str | None) -> bool:
    """True only when the process is provably gone: this host, and no process with that pid.
    Another host, or no pid recorded: cannot tell, so not gone."""
    if host != socket.gethostname() or not (pid or "").isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def process_alive(run: Run) -> bool:
    """False only when the run's owner process is provably gone (same host, no such pid)."""
    tags = run.data.tags
    return not process_gone(tags.get(OWNER_HOST_TAG), tags.get(OWNER_PID_TAG))


def running_runs(tracking_uri: str) -> list[Run]:
    client = client_for(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    return list(client.search_runs(ids, filter_string="attributes.status = 'RUNNING'"))


def end_orphaned_runs(
    tracking_uri: str, run_alive: Callable[[Run], bool] = process_alive
) -> list[str]:
    """End as KILLED every RUNNING MLflow run whose owner is gone; returns their ids."""
    client = client_for(tracking_uri)
    ended = []
    for run in running_runs(tracking_uri):
        if not run_alive(run):
            client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
            ended.append(run.info.run_id)
    return ended


def check_consistency(
    *,
    tracking_uri: str,
    name: str = config.MODEL_NAME,
    export_root: Path,
    run_alive: Callable[[Run], bool] = process_alive,
) -> list[Problem]:
    """Every way registry, aliases, tags, exports and runs disagree; [] when consistent."""
    export_root = Path(export_root)
    client = client_for(tracking_uri)
    problems: list[Problem] = []
    intent = read_intent(export_root)
    if intent is not None:
        problems.append(Problem(INTENT_FILE, f"unfinished {intent.op} started {intent.started_at}"))
    versions = {str(mv.version): mv for mv in all_versions(client, name)}
    for version, mv in sorted(versions.items()):
        if TAG_PENDING in mv.tags:
            problems.append(Problem(f"v{version}", "orphan: an unfinished registration"))
    aliases = {}
    for alias in (config.STAGING_ALIAS, config.PRODUCTION_ALIAS):
        mv = _alias_version(client, name, alias)
        aliases[alias] = mv
        folder = export_root / alias
        if mv is None:
            if folder.exists():
                problems.append(Problem(f"models/{alias}", "exists but the alias is not set"))
            continue
        if TAG_PENDING in mv.tags:
            problems.append(Problem(f"alias {alias}", f"points at orphan v{mv.version}"))
        if not export_matches(folder, name, mv.version):
            problems.append(Problem(f"models/{alias}", f"missing, corrupt or not v{mv.version}"))
    production = aliases[config.PRODUCTION_ALIAS]
    for version, mv in sorted(versions.items()):
        archived = mv.tags.get(config.ARCHIVED_TAG)
        if production is not None and version == str(production.version):
            if archived is not None:
                problems.append(Problem(f"v{version}", "is production but tagged archived"))
        elif was_production(mv) and archived != "true":
            problems.append(Problem(f"v{version}", "left production but is not tagged archived"))
    archived_versions = set()
    for folder in list_archive(archive_root_of(export_root)):
        try:
            meta = verify_export(folder)
        except ExportIntegrityError as exc:
            problems.append(Problem(f"archive {folder.name}", str(exc)))
            continue
        version = str(meta.get("model_version"))
        archived_versions.add(version)
        named = archive_registry_version(folder)
        if version not in versions or (named is not None and named != version):
            problems.append(
                Problem(f"archive {folder.name}", f"names v{version}, not a registry version")
            )
    if production is not None and str(production.version) not in archived_versions:
        problems.append(Problem("archive", f"no copy of production v{production.version}"))
    for folder in (export_root, archive_root_of(export_root)):
        for path in leftovers(folder):
            problems.append(Problem(str(path), "leftover of an interrupted write"))
    for run in running_runs(tracking_uri):
        if not run_alive(run):
            problems.append(
                Problem(f"MLflow run {run.info.run_id}", "RUNNING, its process is gone")
            )
    return problems
