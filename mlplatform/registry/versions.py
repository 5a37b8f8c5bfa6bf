"""Registering a candidate: a new version with its files, the `staging` alias and models/staging.

The protocol: validate; take the registry lock and converge (recovery.py); pick a semver no
other version has (a collision gets the next patch); record the intent; log the Booster and
create the version tagged pending; move `staging` (the commit point); project models/staging;
drop the pending tag; clear the intent. If a step raises, the registration is undone (version,
alias, a registered model this call created); if the undo fails too (a locked database) the
intent stays and the next registry command finishes it. The caller's MLflow run is only
written to, never started or ended.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

from mlplatform import config
from mlplatform.registry.errors import RegistryError
from mlplatform.registry.journal import Intent, clear_intent, write_intent
from mlplatform.registry.projection import project
from mlplatform.registry.recovery import converge_locked, undo_registration
from mlplatform.registry.store import (
    MODEL_ARTIFACT_NAME,
    MODEL_METADATA_FILE,
    REFERENCE_FILE,
    TAG_MODEL_SHA256,
    TAG_PENDING,
    TAG_SEMVER,
    ModelHandle,
    Registry,
    alias_version,
    all_versions,
    global_tracking_uri,
    registered_model_exists,
    sha256_text,
)

SEMVER_RE = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True)
class ModelPackage:
    """What one registration stores: the Booster, its requested semver and version tags, and the
    files beside it (the drift reference, the export's metadata.json, an input example)."""

    booster: lgb.Booster
    semver: str
    tags: dict[str, str]
    input_example: pd.DataFrame
    reference: dict[str, Any]
    metadata: dict[str, Any]


def unique_semver(client: MlflowClient, name: str, semver: str) -> str:
    """`semver`, or its next free patch if another version of `name` already carries it."""
    used = {mv.tags.get(TAG_SEMVER) for mv in all_versions(client, name)}
    major, minor, patch = (int(part) for part in semver.split("."))
    while f"{major}.{minor}.{patch}" in used:
        patch += 1
    return f"{major}.{minor}.{patch}"


def register(registry: Registry, package: ModelPackage, *, run_id: str) -> ModelHandle:
    """Register the package as a new version of `registry.name` and make it staging."""
    if not SEMVER_RE.fullmatch(package.semver):
        raise RegistryError(f"semver {package.semver!r} is not MAJOR.MINOR.PATCH")
    client, name = registry.client, registry.name
    run = client.get_run(run_id)
    with registry.lock():
        converge_locked(registry)
        semver = unique_semver(client, name, package.semver)
        previous = alias_version(client, name, config.STAGING_ALIAS)
        existed = registered_model_exists(client, name)
        if not existed:  # the intent is a tag of the registered model: it must exist first
            client.create_registered_model(
                name, description="Next-day price direction (LightGBM, daily OHLCV)."
            )
        intent = Intent(
            "register",
            name,
            {
                "run_id": run_id,
                "semver": semver,
                "previous_staging": None if previous is None else str(previous.version),
                "model_existed": existed,
                "version": None,
            },
        )
        try:
            write_intent(client, intent)
            if "semver" in package.metadata:
                package = replace(package, metadata={**package.metadata, "semver": semver})
            mv = _register_steps(client, registry, package, intent, run.info.experiment_id)
        except Exception as exc:  # a KeyboardInterrupt leaves the intent to the next command
            try:
                undo_registration(client, intent)
                project(
                    client, registry.tracking_uri, name, registry.export_root, registry.retention
                )
            except Exception as undo_exc:
                exc.add_note(
                    f"undoing the registration failed ({undo_exc!r}); its intent is kept on "
                    f"registered model {name!r}: the next registry command or `make repair` "
                    "finishes the undo"
                )
            else:
                clear_intent(client, name)
            raise
        clear_intent(client, name)
    return ModelHandle.of(mv)


def record_evaluation(registry: Registry, version: str, tags: dict[str, str]) -> None:
    """What an evaluation learnt about a version, on its tags; then its exports and model card
    say so too."""
    with registry.lock():
        for key, value in tags.items():
            registry.client.set_model_version_tag(registry.name, version, key, value)
        converge_locked(registry)


def _register_steps(
    client: MlflowClient,
    registry: Registry,
    package: ModelPackage,
    intent: Intent,
    experiment_id: str,
) -> ModelVersion:
    name, run_id, semver = intent.name, intent.data["run_id"], intent.data["semver"]
    booster = package.booster
    example = package.input_example.head(5)
    signature = infer_signature(example, booster.predict(example))
    text = booster.model_to_string()
    with tempfile.TemporaryDirectory(prefix="mlplatform-reg-") as tmp:
        reference = Path(tmp) / REFERENCE_FILE
        metadata = Path(tmp) / MODEL_METADATA_FILE
        reference.write_text(json.dumps(package.reference, sort_keys=True, default=str))
        metadata.write_text(json.dumps(package.metadata, sort_keys=True, indent=2, default=str))
        logged = client.create_logged_model(
            experiment_id=experiment_id,
            name=MODEL_ARTIFACT_NAME,
            source_run_id=run_id,
            tags={TAG_SEMVER: semver, TAG_PENDING: intent.token},
        )
        with global_tracking_uri(registry.tracking_uri):
            info = mlflow.lightgbm.log_model(
                booster,
                name=MODEL_ARTIFACT_NAME,
                signature=signature,
                input_example=example,
                run_id=run_id,
                model_id=logged.model_id,
                # Explicit requirements skip MLflow's slow import-tracing subprocess.
                pip_requirements=[f"lightgbm=={lgb.__version__}"],
                extra_files=[str(reference), str(metadata)],
            )
    tags = {str(k): str(v) for k, v in package.tags.items()} | {
        TAG_SEMVER: semver,
        TAG_MODEL_SHA256: sha256_text(text),
        TAG_PENDING: intent.token,
    }
    with global_tracking_uri(registry.tracking_uri):  # the SQL store resolves models:/m-… globally
        mv = client.create_model_version(
            name, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
        )
    intent.data["version"] = str(mv.version)
    write_intent(client, intent)
    client.set_registered_model_alias(name, config.STAGING_ALIAS, str(mv.version))  # commit
    project(client, registry.tracking_uri, name, registry.export_root, registry.retention)
    client.delete_model_version_tag(name, str(mv.version), TAG_PENDING)
    return client.get_model_version(name, str(mv.version))
