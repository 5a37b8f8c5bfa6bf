"""Reading the MLflow 3 registry: aliases, versions and the files of a version, verified.

Aliases, not stages (stages are deprecated in MLflow 3). Every function works through an
`MlflowClient` bound to one tracking URI. A Booster is stored by the MLflow lightgbm flavor as
`model.lgb`, LightGBM's native text; `model_text` reads that file itself (after checking the
MLmodel flavor says Booster), never `mlflow.lightgbm.load_model`, whose other branch unpickles,
and checks it against the checksum recorded when the version was registered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import lightgbm as lgb
import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlplatform import config
from mlplatform.registry.errors import ArtifactLost, RegistryError
from mlplatform.registry.lock import registry_lock

# Version tags: a person filters on these in MLflow's UI; everything else is in metadata.json.
TAG_SEMVER = "semver"
TAG_MODEL_SHA256 = "model_sha256"  # of model.lgb: a lost or altered artifact is told apart
# Set by the registration that creates a version, removed when it completes: a version still
# carrying it without its operation's intent is an orphan.
TAG_PENDING = "mlplatform.pending"

# Set when the production alias moves to a version (a promotion or a rollback) and when it
# leaves: the record of every move, which the alias audit and the archive read.
TAG_PROMOTED_BY = "promoted_by"
TAG_PROMOTED_AT = "promoted_at"
TAG_PROMOTION_RUN_ID = "promotion_run_id"
TAG_PROMOTION_REASON = "promotion_reason"
TAG_OVERRIDE = "override"
TAG_PREVIOUS_PRODUCTION = "previous_production_version"
TAG_ARCHIVED = config.ARCHIVED_TAG
TAG_ARCHIVED_AT = "archived_at"
TAG_ROLLED_BACK_BY = "rolled_back_by"
TAG_ROLLED_BACK_AT = "rolled_back_at"
TAG_ROLLBACK_REASON = "rollback_reason"
TAG_ROLLBACK_RUN_ID = "rollback_run_id"
TAG_ROLLBACK_FROM = "rollback_from_version"

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

    @classmethod
    def of(cls, mv: ModelVersion) -> ModelHandle:
        return cls(
            name=mv.name,
            version=str(mv.version),
            semver=mv.tags.get(TAG_SEMVER, ""),
            uri=f"models:/{mv.name}/{mv.version}",
            run_id=mv.run_id or "",
        )


def client_for(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@dataclass(frozen=True)
class Registry:
    """Which registry, model and export an operation works on, and how it is locked."""

    tracking_uri: str
    export_root: Path
    name: str = config.MODEL_NAME
    lock_url: str | None = None  # Postgres URL of the cross-host lock; None: one host
    retention: int = config.ARCHIVE_RETENTION  # archive folders kept in models/archive
    # What else belongs to a version, which a prune removes with it: the Optuna storage URL of
    # its tuning study and the folder of its reports (None: none kept there).
    optuna_storage: str | None = None
    reports_dir: Path | None = None

    @property
    def client(self) -> MlflowClient:
        return client_for(self.tracking_uri)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The registry lock; refused when the registry is shared by hosts (a tracking server)
        and no cross-host lock is configured: this host's lock alone lets two hosts both move
        production."""
        if self.lock_url is None and self.tracking_uri.startswith(("http://", "https://")):
            raise RegistryError(
                f"the registry at {self.tracking_uri} is shared by every host that reaches it, "
                "and registry writes need a lock every host takes: set "
                f"{config.REGISTRY_LOCK_URL_ENV} to a PostgreSQL URL (the MLflow or Optuna "
                "database serves), or put the Optuna storage on PostgreSQL"
            )
        return registry_lock(Path(self.export_root), self.name, self.lock_url)


def now_utc() -> datetime:
    return datetime.now(UTC)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def global_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-global tracking URI at `tracking_uri`, then restore it:
    `mlflow.lightgbm.log_model` and the SQL store's `create_model_version` (which resolves
    `models:/m-…` globally, a limitation MLflow's own source names) read only the global."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _GLOBAL_URI_LOCK:
        previous = tracking_utils._tracking_uri
        previous_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None: MLflow's default
            if previous_env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_env


def is_not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def registered_model_exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def registry_tag(client: MlflowClient, name: str, key: str) -> str | None:
    """A tag of the registered model, or None (no such tag, or no such model)."""
    try:
        return client.get_registered_model(name).tags.get(key)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def get_alias_version(tracking_uri: str, name: str, alias: str) -> ModelVersion | None:
    return alias_version(client_for(tracking_uri), name, alias)


def all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        return client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        if is_not_found(exc):
            return []
        raise


def latest_version(tracking_uri: str, name: str) -> ModelVersion | None:
    """The most recently registered version (highest number), or None."""
    versions = all_versions(client_for(tracking_uri), name)
    return max(versions, key=lambda mv: int(mv.version), default=None)


def version_exists(client: MlflowClient, name: str, version: str | int) -> bool:
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        if is_not_found(exc):
            return False
        raise
    return True


# --- the files of a version ----------------------------------------------------------------
def _download(client: MlflowClient, tracking_uri: str, mv: ModelVersion, rel: str) -> bytes:
    rel_path = PurePosixPath(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts:
        raise RegistryError(f"models:/{mv.name}/{mv.version}: refusing artifact path {rel!r}")
    base = client.get_model_version_download_uri(mv.name, str(mv.version)).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="mlplatform-dl-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{base}/{rel_path}", dst_path=tmp, tracking_uri=tracking_uri
            )
            return Path(local).read_bytes()
        except (MlflowException, OSError) as exc:
            raise ArtifactLost(
                f"models:/{mv.name}/{mv.version}: {rel} is gone from the registry's artifacts "
                f"({type(exc).__name__})"
            ) from exc


def model_text(client: MlflowClient, tracking_uri: str, mv: ModelVersion) -> str:
    """The LightGBM native text of a registered Booster: its MLmodel flavor checked, its bytes
    checked against the checksum recorded at registration (versions registered before the
    checksum was recorded are checked by parsing only); ArtifactLost names what is wrong."""
    mlmodel = yaml.safe_load(_download(client, tracking_uri, mv, "MLmodel"))
    flavor = (mlmodel or {}).get("flavors", {}).get("lightgbm")
    if not flavor:
        raise ArtifactLost(f"models:/{mv.name}/{mv.version}: no lightgbm flavor in MLmodel")
    model_class = flavor.get("model_class", BOOSTER_CLASS)
    data = str(flavor.get("data", ""))
    if model_class != BOOSTER_CLASS or not data.endswith(".lgb"):
        raise RegistryError(
            f"models:/{mv.name}/{mv.version}: flavor is {model_class} ({data}); only a natively "
            "saved lightgbm Booster is loaded (anything else would need unpickling)"
        )
    text = _download(client, tracking_uri, mv, data).decode("utf-8")
    expected = mv.tags.get(TAG_MODEL_SHA256)
    if expected and sha256_text(text) != expected:
        raise ArtifactLost(
            f"models:/{mv.name}/{mv.version}: {data} does not match the checksum recorded at "
            f"registration (expected {expected[:12]}…, found {sha256_text(text)[:12]}…)"
        )
    try:
        lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ArtifactLost(
            f"models:/{mv.name}/{mv.version}: LightGBM cannot parse {data} ({exc})"
        ) from exc
    return text


def was_production(mv: ModelVersion) -> bool:
    return bool(mv.tags.get(TAG_PROMOTED_AT) or mv.tags.get(TAG_ROLLED_BACK_AT))


def production_since(mv: ModelVersion) -> str:
    """When the alias last moved to this version (ISO time), "" if it never did."""
    return max(mv.tags.get(TAG_PROMOTED_AT, ""), mv.tags.get(TAG_ROLLED_BACK_AT, ""))


def load_booster(tracking_uri: str, name: str, version: str | int) -> lgb.Booster:
    """A registered Booster from its verified native text (never unpickles)."""
    client = client_for(tracking_uri)
    return lgb.Booster(
        model_str=model_text(client, tracking_uri, client.get_model_version(name, str(version)))
    )


def _extra_json(tracking_uri: str, name: str, version: str | int, file: str) -> dict[str, Any]:
    client = client_for(tracking_uri)
    mv = client.get_model_version(name, str(version))
    return json.loads(_download(client, tracking_uri, mv, f"{EXTRA_FILES_DIR}/{file}"))


def download_reference(tracking_uri: str, name: str, version: str | int) -> dict[str, Any]:
    """The drift reference bins stored with the version (ReferenceBins.to_dict() form)."""
    return _extra_json(tracking_uri, name, version, REFERENCE_FILE)


def download_model_metadata(tracking_uri: str, name: str, version: str | int) -> dict[str, Any]:
    """The metadata.json registered with the version (recipe, facts, features)."""
    return _extra_json(tracking_uri, name, version, MODEL_METADATA_FILE)
