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
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
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
from mlplatform.registry.export import RegistryError, export_lock, write_export

# Model-version tags the semver rule reads (the keys match training.versioning.VersionFacts).
TAG_SEMVER = "semver"
TAG_FEATURE_SCHEMA_HASH = "feature_schema_hash"
TAG_LABEL_DEFINITION = "label_definition"
TAG_PARAMS_HASH = "params_hash"
TAG_DATA_FINGERPRINT = "data_fingerprint"
FACT_TAGS = (TAG_FEATURE_SCHEMA_HASH, TAG_LABEL_DEFINITION, TAG_PARAMS_HASH, TAG_DATA_FINGERPRINT)

MODEL_ARTIFACT_NAME = "model"
REFERENCE_FILE = "reference.json"
MODEL_METADATA_FILE = "metadata.json"
EXTRA_FILES_DIR = "extra_files"  # where the lightgbm flavor puts `extra_files`
BOOSTER_CLASS = "lightgbm.basic.Booster"

Fault = Callable[[str], None]

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


def _no_fault(_step: str) -> None:
    return None


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


def handle_for(tracking_uri: str, name: str, version: str | int) -> ModelHandle:
    mv = client_for(tracking_uri).get_model_version(name, str(version))
    return _handle(mv)


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
def register_candidate(
    booster: lgb.Booster,
    *,
    tracking_uri: str,
    run_id: str,
    name: str = config.MODEL_NAME,
    semver: str,
    tags: dict[str, str],
    input_example: pd.DataFrame,
    reference: dict[str, Any],
    metadata: dict[str, Any],
    export_root: Path,
    fault: Fault | None = None,
) -> ModelHandle:
    """Log the Booster to `run_id`, register a version, point `staging` at it, export it.

    All or nothing: if any step raises, the new version is deleted, the `staging` alias is put
    back where it was (or removed if there was none), a registered model this call created is
    deleted, and `export_root/staging` is left as it was; then the exception propagates.
    The run is only written to, never started or ended, so a caller's active run stays active.
    `fault(step)` is called after "after_log", "after_version" and "after_alias" for tests.
    Holds the export lock (export_root/.lock) so alias and export change together.
    """
    with export_lock(Path(export_root)):
        return _register_locked(
            booster,
            tracking_uri=tracking_uri,
            run_id=run_id,
            name=name,
            semver=semver,
            tags=tags,
            input_example=input_example,
            reference=reference,
            metadata=metadata,
            export_root=Path(export_root),
            fault=fault or _no_fault,
        )


def _register_locked(
    booster: lgb.Booster,
    *,
    tracking_uri: str,
    run_id: str,
    name: str,
    semver: str,
    tags: dict[str, str],
    input_example: pd.DataFrame,
    reference: dict[str, Any],
    metadata: dict[str, Any],
    export_root: Path,
    fault: Fault,
) -> ModelHandle:
    client = client_for(tracking_uri)
    run = client.get_run(run_id)
    previous_staging = _alias_version(client, name, config.STAGING_ALIAS)
    model_existed = _registered_model_exists(client, name)
    version_tags = {str(k): str(v) for k, v in tags.items()} | {TAG_SEMVER: semver}
    logged_model_id: str | None = None
    new_version: str | None = None
    try:
        example = input_example.head(5)
        signature = infer_signature(example, booster.predict(example))
        with tempfile.TemporaryDirectory(prefix="mlplatform-reg-") as tmp:
            ref_path = Path(tmp) / REFERENCE_FILE
            meta_path = Path(tmp) / MODEL_METADATA_FILE
            ref_path.write_text(json.dumps(reference, sort_keys=True, default=str))
            meta_path.write_text(json.dumps(metadata, sort_keys=True, indent=2, default=str))
            logged = client.create_logged_model(
                experiment_id=run.info.experiment_id,
                name=MODEL_ARTIFACT_NAME,
                source_run_id=run_id,
                tags={TAG_SEMVER: semver},
            )
            logged_model_id = logged.model_id
            with _global_tracking_uri(tracking_uri):
                info = mlflow.lightgbm.log_model(
                    booster,
                    name=MODEL_ARTIFACT_NAME,
                    signature=signature,
                    input_example=example,
                    run_id=run_id,
                    model_id=logged_model_id,
                    # Explicit requirements skip MLflow's slow import-tracing subprocess.
                    pip_requirements=[f"lightgbm=={lgb.__version__}"],
                    extra_files=[str(ref_path), str(meta_path)],
                )
        fault("after_log")
        if not model_existed:
            client.create_registered_model(
                name, description="Next-day price direction (LightGBM, daily OHLCV)."
            )
        with _global_tracking_uri(tracking_uri):  # the SQL store resolves models:/m-… globally
            mv = client.create_model_version(
                name,
                source=info.model_uri,
                run_id=run_id,
                tags=version_tags,
                model_id=info.model_id,
            )
        new_version = str(mv.version)
        fault("after_version")
        client.set_registered_model_alias(name, config.STAGING_ALIAS, new_version)
        fault("after_alias")
        mv = client.get_model_version(name, new_version)
        write_export(
            Path(export_root) / config.STAGING_ALIAS,
            model_text=booster.model_to_string(),
            metadata=export_metadata(mv, alias=config.STAGING_ALIAS, metadata=metadata),
        )
    except BaseException as exc:
        _undo_registration(
            client,
            exc,
            name=name,
            new_version=new_version,
            previous_staging=previous_staging,
            model_existed=model_existed,
            logged_model_id=logged_model_id,
        )
        raise
    return _handle(mv)


def _undo_registration(
    client: MlflowClient,
    exc: BaseException,
    *,
    name: str,
    new_version: str | None,
    previous_staging: ModelVersion | None,
    model_existed: bool,
    logged_model_id: str | None,
) -> None:
    """Best-effort restore; a step that fails is noted on the original exception, not raised."""

    def attempt(what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as undo_exc:
            exc.add_note(f"registry rollback step failed ({what}): {undo_exc!r}")

    if new_version is not None:
        current = _safe_alias(client, name, config.STAGING_ALIAS)
        if current is not None and str(current.version) == new_version:
            if previous_staging is not None:
                attempt(
                    "restore staging alias",
                    lambda: client.set_registered_model_alias(
                        name, config.STAGING_ALIAS, str(previous_staging.version)
                    ),
                )
            else:
                attempt(
                    "remove staging alias",
                    lambda: client.delete_registered_model_alias(name, config.STAGING_ALIAS),
                )
        attempt("delete model version", lambda: client.delete_model_version(name, new_version))
    if not model_existed:
        attempt(
            "delete registered model",
            lambda: _registered_model_exists(client, name) and client.delete_registered_model(name),
        )
    if logged_model_id is not None:
        attempt("delete logged model", lambda: client.delete_logged_model(logged_model_id))


def _safe_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return _alias_version(client, name, alias)
    except Exception:
        return None
