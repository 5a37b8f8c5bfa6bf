"""Removing what a prune intent names: versions, their MLflow runs and models, studies, reports.

Deletion cannot be undone, so a prune only goes forward: every step deletes one named thing
that still exists and skips what is already gone, so running the whole list again (the next
registry command or `repair`, after a kill) finishes it. Versions go first: once a version is
out of the registry nothing depends on its runs, studies or reports any more. A version an
alias points at by then (moved outside the platform since the plan) is kept, and so are its
runs and the rest.

MLflow deletes a run or a logged model softly (a row marked deleted, its files kept); like
`mlflow gc`, the files are then removed and, where the tracking store can (a SQL store, not a
tracking server, whose operator runs `mlflow gc`), the rows too.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking._tracking_service.utils import _get_store

from mlplatform.registry.store import Registry, is_not_found
from mlplatform.training.study_storage import make_storage


@dataclass
class Removal:
    """Everything one prune removes, by name (no secrets: it is written into the intent)."""

    versions: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # the versions' runs and their nested runs
    logged_models: list[str] = field(default_factory=list)  # the versions' MLflow models
    studies: list[str] = field(default_factory=list)  # Optuna study names
    reports: list[str] = field(default_factory=list)  # file names in the reports folder

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Removal:
        return cls(**{key: list(data.get(key, [])) for key in cls.__dataclass_fields__})


def _delete_files(uri: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # gone already
        get_artifact_repository(uri).delete_artifacts()


def _delete_run(client: MlflowClient, store: Any, run_id: str) -> None:
    """Files, then the row softly, then (a SQL store) for good: each step may run again."""
    try:
        run = client.get_run(run_id)  # a softly deleted run is still found
    except MlflowException as exc:
        if is_not_found(exc):
            return
        raise
    _delete_files(run.info.artifact_uri)
    if run.info.lifecycle_stage != "deleted":
        client.delete_run(run_id)
    if hasattr(store, "_hard_delete_run"):  # what `mlflow gc` calls
        store._hard_delete_run(run_id)


def _delete_logged_model(client: MlflowClient, store: Any, model_id: str) -> None:
    """As a run: files, the row softly, then for good where the store can."""
    hard = hasattr(store, "_hard_delete_logged_model")  # what `mlflow gc` calls
    try:
        if hard:
            model = store.get_logged_model(model_id, allow_deleted=True)
        else:
            model = client.get_logged_model(model_id)
    except MlflowException as exc:
        if is_not_found(exc):
            return
        raise
    _delete_files(model.artifact_location)
    try:
        client.delete_logged_model(model_id)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
    if hard:
        store._hard_delete_logged_model(model_id)


def _delete_study(storage_url: str, name: str) -> None:
    with contextlib.suppress(KeyError):  # gone already
        optuna.delete_study(study_name=name, storage=make_storage(storage_url))


def remove(registry: Registry, removal: Removal) -> None:
    """Delete what `removal` names and still exists (see the module docstring for the order)."""
    client, name = registry.client, registry.name
    aliased: set[str] = set()
    for version in removal.versions:
        try:
            mv = client.get_model_version(name, version)
        except MlflowException as exc:
            if is_not_found(exc):
                continue
            raise
        if mv.aliases:
            aliased.add(version)
            continue
        client.delete_model_version(name, version)
    if aliased:  # nothing of a version that stays goes: leave its belongings to the next plan
        return
    store = _get_store(registry.tracking_uri)
    for run_id in removal.runs:
        _delete_run(client, store, run_id)
    for model_id in removal.logged_models:
        _delete_logged_model(client, store, model_id)
    if registry.optuna_storage:
        for study in removal.studies:
            _delete_study(registry.optuna_storage, study)
    if registry.reports_dir is not None:
        for report in removal.reports:
            (Path(registry.reports_dir) / report).unlink(missing_ok=True)
