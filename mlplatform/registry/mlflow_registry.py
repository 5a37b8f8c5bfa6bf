"""MLflow 3 model registry operations: register a candidate atomically, read aliases and tags.

Aliases, not stages (stages are deprecated in MLflow 3). Every function takes the tracking URI
explicitly and works through `MlflowClient(tracking_uri)`. The one exception is
`mlflow.lightgbm.log_model`, which only reads the process-global tracking URI; it runs inside
`_global_tracking_uri`, which sets and restores that global under a lock, and is given the run
id and a pre-created LoggedModel so it never consults the fluent "active run". The SQL registry
store's `create_model_version` also resolves `models:/m-…` through the global URI (a limitation
MLflow's own source acknowledges), so it runs inside the same context.

A Booster is stored by the MLflow lightgbm flavor as `model.lgb`, LightGBM's native text format.
`load_booster` reads that file itself (after checking the MLmodel flavor says Booster) instead of
going through `mlflow.lightgbm.load_model`, whose non-Booster branch unpickles.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from mlplatform import config
from mlplatform.registry.export import RegistryError, export_matches, remove_export, write_export
from mlplatform.registry.journal import (
    Intent,
    clear_intent,
    intent_path,
    registry_lock,
    write_intent,
)

# Model-version tags the semver rule reads (the keys match training.versioning.VersionFacts).
TAG_SEMVER = "semver"
TAG_FEATURE_SCHEMA_HASH = "feature_schema_hash"
TAG_LABEL_DEFINITION = "label_definition"
TAG_PARAMS_HASH = "params_hash"
TAG_DATA_FINGERPRINT = "data_fingerprint"
# Set on a version (and its logged model) by the registration that creates it, removed when that
# registration completes: a version still carrying it after its intent is gone is an orphan.
TAG_PENDING = "mlplatform.pending"
SEMVER_RE = re.compile(r"\d+\.\d+\.\d+")
FACT_TAGS = (TAG_FEATURE_SCHEMA_HASH, TAG_LABEL_DEFINITION, TAG_PARAMS_HASH, TAG_DATA_FINGERPRINT)

MODEL_ARTIFACT_NAME = "model"
REFERENCE_FILE = "reference.json"
MODEL_METADATA_FILE = "metadata.json"
EXTRA_FILES_DIR = "extra_files"  # where the lightgbm flavor puts `extra_files`
BOOSTER_CLASS = "lightgbm.basic.Booster"

_GLOBAL_URI_LOCK = threading.RLock()


@dataclass(frozen=True)
class ModelHandle:
    """What the Dagster assets pass around instead of a model binary."""

    name: str
    version: str
    semver: str
    uri: str  # models:/<name>/<version>
    run_id: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def client_for(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def now_utc() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _global_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-global tracking URI at `tracking_uri` and restore it afterwards."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _GLOBAL_URI_LOCK:
        previous = tracking_utils._tracking_uri
        previous_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)
            if previous_env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_env


def _is_not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _registered_model_exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if _is_not_found(exc):
            return False
        raise
    return True


def get_alias_version(tracking_uri: str, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when the model or the alias does not exist."""
    return _alias_version(client_for(tracking_uri), name, alias)


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _is_not_found(exc):
            return None
        raise


def latest_version(tracking_uri: str, name: str = config.MODEL_NAME) -> ModelVersion | None:
    """The most recently registered version (highest number), or None."""
    client = client_for(tracking_uri)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        if _is_not_found(exc):
            return None
        raise
    return max(versions, key=lambda mv: int(mv.version), default=None)


def version_facts(tracking_uri: str, name: str, version: str | int) -> dict[str, str | None]:
    """The tags the semver rule compares, keyed like training.versioning.VersionFacts."""
    mv = client_for(tracking_uri).get_model_version(name, str(version))
    facts: dict[str, str | None] = {"version": mv.tags.get(TAG_SEMVER)}
    for key in FACT_TAGS:
        facts[key] = mv.tags.get(key)
    return facts


def _handle(mv: ModelVersion) -> ModelHandle:
    return ModelHandle(
        name=mv.name,
        version=str(mv.version),
        semver=mv.tags.get(TAG_SEMVER, ""),
        uri=f"models:/{mv.name}/{mv.version}",
        run_id=mv.run_id or "",
    )


# --- reading artifacts -------------------------------------------------------------------------
def _download(
    client: MlflowClient, tracking_uri: str, name: str, version: str, rel: str, dst: Path
):
    base = client.get_model_version_download_uri(name, str(version)).rstrip("/")
    rel_path = PurePosixPath(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts:
        raise RegistryError(f"models:/{name}/{version}: refusing artifact path {rel!r}")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{base}/{rel_path}", dst_path=str(dst), tracking_uri=tracking_uri
    )
    return Path(local)


def read_model_artifact(tracking_uri: str, name: str, version: str | int, rel: str) -> bytes:
    """Bytes of one file inside a registered version's model artifact folder."""
    client = client_for(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlplatform-dl-") as tmp:
        return _download(client, tracking_uri, name, str(version), rel, Path(tmp)).read_bytes()


def read_model_text(tracking_uri: str, name: str, version: str | int) -> str:
    """The LightGBM native text of a registered Booster, after checking its MLmodel flavor."""
    client = client_for(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlplatform-dl-") as tmp:
        mlmodel = yaml.safe_load(
            _download(client, tracking_uri, name, str(version), "MLmodel", Path(tmp)).read_text()
        )
        flavor = (mlmodel or {}).get("flavors", {}).get("lightgbm")
        if not flavor:
            raise RegistryError(f"models:/{name}/{version}: no lightgbm flavor in MLmodel")
        model_class = flavor.get("model_class", BOOSTER_CLASS)
        data = str(flavor.get("data", ""))
        if model_class != BOOSTER_CLASS or not data.endswith(".lgb"):
            raise RegistryError(
                f"models:/{name}/{version}: flavor is {model_class} ({data}); only a natively "
                "saved lightgbm Booster is loaded (anything else would need unpickling)"
            )
        return _download(client, tracking_uri, name, str(version), data, Path(tmp)).read_text(
            encoding="utf-8"
        )


def load_booster(tracking_uri: str, name: str, version: str | int) -> lgb.Booster:
    """Load a registered Booster from its native `model.lgb` text (never unpickles)."""
    return lgb.Booster(model_str=read_model_text(tracking_uri, name, version))


def download_reference(tracking_uri: str, name: str, version: str | int) -> dict[str, Any]:
    """The drift reference bins stored with the version (ReferenceBins.to_dict() form)."""
    raw = read_model_artifact(tracking_uri, name, version, f"{EXTRA_FILES_DIR}/{REFERENCE_FILE}")
    return json.loads(raw)


def download_model_metadata(tracking_uri: str, name: str, version: str | int) -> dict[str, Any]:
    """The metadata dict given to register_candidate for this version."""
    raw = read_model_artifact(
        tracking_uri, name, version, f"{EXTRA_FILES_DIR}/{MODEL_METADATA_FILE}"
    )
    return json.loads(raw)


def export_metadata(
    mv: ModelVersion, *, alias: str, metadata: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """metadata.json of an export: the caller's metadata plus the registry facts naming it."""
    return {
        **metadata,
        "model_name": mv.name,
        "model_version": str(mv.version),
        "semver": mv.tags.get(TAG_SEMVER, ""),
        "model_uri": f"models:/{mv.name}/{mv.version}",
        "mlflow_run_id": mv.run_id,
        "alias": alias,
        "tags": dict(mv.tags),
        "exported_at": now_utc().isoformat(),
        **extra,
    }


# --- registering a candidate -------------------------------------------------------------------
def all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        return client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        if _is_not_found(exc):
            return []
        raise


def unique_semver(client: MlflowClient, name: str, semver: str) -> str:
    """`semver`, or its next free patch if another version of `name` already carries it."""
    if not SEMVER_RE.fullmatch(semver):
        raise RegistryError(f"semver {semver!r} is not MAJOR.MINOR.PATCH")
    used = {mv.tags.get(TAG_SEMVER) for mv in all_versions(client, name)}
    major, minor, patch = (int(part) for part in semver.split("."))
    while f"{major}.{minor}.{patch}" in used:
        patch += 1
    return f"{major}.{minor}.{patch}"


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


def register_candidate(
    package: ModelPackage,
    *,
    tracking_uri: str,
    run_id: str,
    name: str = config.MODEL_NAME,
    export_root: Path,
) -> ModelHandle:
    """Log the package's Booster to `run_id`, register a version, point `staging` at it, export it.

    The protocol (see journal.py): validate; take the registry lock (registrations are
    serialised); finish any operation a dead process left; pick a semver no other version of
    `name` has (a collision gets the next patch); record the intent; log the model and create
    the version tagged `mlplatform.pending`; move `staging` (the commit point); write
    models/staging; drop the pending tag; clear the intent. If a step raises, the registration is
    undone (version, alias, a registered model this call created); if the undo fails too (a
    locked database) the intent stays and the next registry command or `repair` finishes it.
    The run is only written to, never started or ended, so a caller's active run stays active.
    """
    from mlplatform.registry import recovery  # recovery imports this module

    export_root = Path(export_root)
    if not SEMVER_RE.fullmatch(package.semver):
        raise RegistryError(f"semver {package.semver!r} is not MAJOR.MINOR.PATCH")
    client = client_for(tracking_uri)
    run = client.get_run(run_id)
    with registry_lock(export_root):
        recovery.recover_locked(tracking_uri, name, export_root)
        semver = unique_semver(client, name, package.semver)
        previous_staging = _alias_version(client, name, config.STAGING_ALIAS)
        intent = Intent(
            "register",
            name,
            {
                "run_id": run_id,
                "semver": semver,
                "previous_staging": None if previous_staging is None else previous_staging.version,
                "model_existed": _registered_model_exists(client, name),
                "logged_model_id": None,
                "version": None,
            },
        )
        try:
            write_intent(export_root, intent)
            if "semver" in package.metadata:
                package = replace(package, metadata={**package.metadata, "semver": semver})
            mv = _register_steps(
                client,
                package,
                intent,
                tracking_uri=tracking_uri,
                experiment_id=run.info.experiment_id,
                export_root=export_root,
            )
        except Exception as exc:  # a KeyboardInterrupt leaves the intent to the next command
            try:
                undo_registration(client, tracking_uri, export_root, intent)
            except Exception as undo_exc:
                exc.add_note(
                    f"undoing the registration failed ({undo_exc!r}); the intent is kept in "
                    f"{intent_path(export_root)}: the next registry command or `make repair` "
                    "finishes the undo"
                )
            else:
                clear_intent(export_root)
            raise
        clear_intent(export_root)
    return _handle(mv)


def _register_steps(
    client: MlflowClient,
    package: ModelPackage,
    intent: Intent,
    *,
    tracking_uri: str,
    experiment_id: str,
    export_root: Path,
) -> ModelVersion:
    name, run_id, semver = intent.name, intent.data["run_id"], intent.data["semver"]
    booster, metadata = package.booster, package.metadata
    example = package.input_example.head(5)
    signature = infer_signature(example, booster.predict(example))
    with tempfile.TemporaryDirectory(prefix="mlplatform-reg-") as tmp:
        ref_path = Path(tmp) / REFERENCE_FILE
        meta_path = Path(tmp) / MODEL_METADATA_FILE
        ref_path.write_text(json.dumps(package.reference, sort_keys=True, default=str))
        meta_path.write_text(json.dumps(metadata, sort_keys=True, indent=2, default=str))
        logged = client.create_logged_model(
            experiment_id=experiment_id,
            name=MODEL_ARTIFACT_NAME,
            source_run_id=run_id,
            tags={TAG_SEMVER: semver, TAG_PENDING: intent.token},
        )
        intent.data["logged_model_id"] = logged.model_id
        write_intent(export_root, intent)
        with _global_tracking_uri(tracking_uri):
            info = mlflow.lightgbm.log_model(
                booster,
                name=MODEL_ARTIFACT_NAME,
                signature=signature,
                input_example=example,
                run_id=run_id,
                model_id=logged.model_id,
                # Explicit requirements skip MLflow's slow import-tracing subprocess.
                pip_requirements=[f"lightgbm=={lgb.__version__}"],
                extra_files=[str(ref_path), str(meta_path)],
            )
    if not intent.data["model_existed"] and not _registered_model_exists(client, name):
        client.create_registered_model(
            name, description="Next-day price direction (LightGBM, daily OHLCV)."
        )
    version_tags = {str(k): str(v) for k, v in package.tags.items()} | {
        TAG_SEMVER: semver,
        TAG_PENDING: intent.token,
    }
    with _global_tracking_uri(tracking_uri):  # the SQL store resolves models:/m-… globally
        mv = client.create_model_version(
            name, source=info.model_uri, run_id=run_id, tags=version_tags, model_id=info.model_id
        )
    intent.data["version"] = str(mv.version)
    write_intent(export_root, intent)
    client.set_registered_model_alias(name, config.STAGING_ALIAS, str(mv.version))  # commit
    write_export(
        export_root / config.STAGING_ALIAS,
        model_text=booster.model_to_string(),
        metadata=export_metadata(
            client.get_model_version(name, str(mv.version)),
            alias=config.STAGING_ALIAS,
            metadata=metadata,
        ),
    )
    client.delete_model_version_tag(name, str(mv.version), TAG_PENDING)
    return client.get_model_version(name, str(mv.version))


def pending_versions(client: MlflowClient, name: str, token: str | None = None) -> list[str]:
    """Versions a registration tagged pending (of one intent, or of any when token is None)."""
    return [
        str(mv.version)
        for mv in all_versions(client, name)
        if TAG_PENDING in mv.tags and (token is None or mv.tags[TAG_PENDING] == token)
    ]


def undo_registration(
    client: MlflowClient, tracking_uri: str, export_root: Path, intent: Intent
) -> None:
    """Roll a registration back: staging to where it was, the new version(s) and model deleted,
    models/staging matching the restored alias.

    Idempotent (each step checks first), so a crash or a failure part way is finished by calling
    it again. The logged model stays with its run: the run is the record of what was tried.
    """
    name = intent.name
    created = set(pending_versions(client, name, intent.token))
    if intent.data.get("version") and _version_exists(client, name, intent.data["version"]):
        created.add(str(intent.data["version"]))
    staging = _alias_version(client, name, config.STAGING_ALIAS)
    if staging is not None and str(staging.version) in created:
        previous = intent.data.get("previous_staging")
        if previous and _version_exists(client, name, previous):
            client.set_registered_model_alias(name, config.STAGING_ALIAS, str(previous))
        else:
            client.delete_registered_model_alias(name, config.STAGING_ALIAS)
    for version in sorted(created, key=int):
        client.delete_model_version(name, version)
    if (
        not intent.data.get("model_existed")
        and _registered_model_exists(client, name)
        and not all_versions(client, name)
    ):
        client.delete_registered_model(name)
    sync_staging_export(client, tracking_uri, export_root, name)


def sync_staging_export(
    client: MlflowClient, tracking_uri: str, export_root: Path, name: str
) -> bool:
    """models/staging as the staging alias says (rebuilt from the registry, or removed when the
    alias is unset); True when it changed."""
    staging = _alias_version(client, name, config.STAGING_ALIAS)
    folder = Path(export_root) / config.STAGING_ALIAS
    if staging is None:
        existed = folder.exists()
        remove_export(folder)
        return existed
    if export_matches(folder, name, staging.version):
        return False
    rebuild_alias_export(client, tracking_uri, staging, folder)
    return True


def finish_registration(
    client: MlflowClient, tracking_uri: str, export_root: Path, intent: Intent
) -> str:
    """Roll a registration whose staging alias moved forward: export it, drop the pending tag."""
    name = intent.name
    staging = _alias_version(client, name, config.STAGING_ALIAS)
    assert staging is not None
    version = str(staging.version)
    sync_staging_export(client, tracking_uri, export_root, name)
    if TAG_PENDING in staging.tags:
        client.delete_model_version_tag(name, version, TAG_PENDING)
    for other in pending_versions(client, name, intent.token):
        if other != version:
            client.delete_model_version(name, other)
    return version


def rebuild_alias_export(
    client: MlflowClient, tracking_uri: str, mv: ModelVersion, dest: Path, alias: str = ""
) -> Path:
    """Write an export folder (metadata alias = `alias`, default the folder's name) from what
    the registry holds for `mv`."""
    text = read_model_text(tracking_uri, mv.name, mv.version)
    lgb.Booster(model_str=text)  # parses, or raises before anything is written
    try:
        candidate_meta = download_model_metadata(tracking_uri, mv.name, mv.version)
    except Exception:  # a version registered without metadata still exports
        candidate_meta = {}
    mv = client.get_model_version(mv.name, str(mv.version))
    return write_export(
        dest,
        model_text=text,
        metadata=export_metadata(mv, alias=alias or dest.name, metadata=candidate_meta),
    )


def _version_exists(client: MlflowClient, name: str, version: str | int) -> bool:
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _is_not_found(exc):
            return False
        raise
    return True
