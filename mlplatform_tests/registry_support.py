"""Helpers for the test_registry_* files: a real MLflow sqlite store in a temp folder."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from mlplatform import config
from mlplatform.registry import (
    ModelHandle,
    ModelPackage,
    Registry,
    archive_registry_version,
    list_archive,
    register,
)

FEATURES = ("f0", "f1", "f2")


def tiny_frame(seed: int = 0, rows: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))).astype("float32"), columns=FEATURES)
    y = (X["f0"] + 0.5 * rng.normal(size=rows) > 0).astype(int)
    return X, y


def tiny_booster(seed: int = 0) -> lgb.Booster:
    """A 3-tree Booster trained in milliseconds; the seed changes the data so models differ."""
    X, y = tiny_frame(seed)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=3)


@dataclass
class Store:
    root: Path
    uri: str
    experiment_id: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def new_run(self) -> str:
        return self.client.create_run(self.experiment_id).info.run_id

    def register(
        self, semver: str, seed: int, export_root: Path, run_id: str | None = None, **kwargs
    ) -> ModelHandle:
        X, _ = tiny_frame(seed)
        package = ModelPackage(
            tiny_booster(seed),
            semver=semver,
            tags={"data_fingerprint": f"fp{seed}", "dagster_run_id": f"dagster-{seed}"},
            input_example=X,
            reference={"bins": {"f0": [0.0, 1.0]}, "seed": seed},
            metadata={"features": list(FEATURES), "seed": seed},
        )
        return register(
            self.registry(export_root, **kwargs), package, run_id=run_id or self.new_run()
        )

    def registry(self, export_root: Path, **kwargs: object) -> Registry:
        return Registry(self.uri, export_root, **kwargs)  # type: ignore[arg-type]

    def copy_to(self, dest: Path) -> Store:
        """A copy of the database (artifacts are shared: tests never modify them)."""
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.root / "mlflow.db", dest / "mlflow.db")
        return Store(dest, f"sqlite:///{dest / 'mlflow.db'}", self.experiment_id)


_EMPTY_DB: Path | None = None


def _empty_db() -> Path:
    """A migrated, empty MLflow database made once per test process (migrations take seconds)."""
    global _EMPTY_DB
    if _EMPTY_DB is None:
        folder = Path(tempfile.mkdtemp(prefix="mlplatform-mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _EMPTY_DB = folder / "mlflow.db"
    return _EMPTY_DB


def make_store(root: Path) -> Store:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_empty_db(), root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(
        config.EXPERIMENT_NAME, artifact_location=str(root / "artifacts")
    )
    return Store(root, uri, experiment_id)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes), to prove nothing changed."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def find_archive(export_root: Path, version: str) -> Path | None:
    """The archive folder models/archive keeps for a registry version, if any."""
    for folder in list_archive(Path(export_root) / "archive"):
        if archive_registry_version(folder) == str(version):
            return folder
    return None


def remove_export(folder: Path | None) -> None:
    """Delete an export as a careless person would: the folder, or the link to it."""
    assert folder is not None
    if folder.is_symlink():
        folder.unlink()
    else:
        shutil.rmtree(folder)


STUDY_TAG = "tuning_study"


def prune_registry(uri: str, export_root: Path, **kwargs: object) -> Registry:
    """The store's registry with the studies and reports a retrain keeps beside it (its folder's
    studies.db and reports/), as PlatformStores.registry() gives a prune."""
    root = Path(uri.removeprefix("sqlite:///")).parent
    return Registry(
        uri,
        export_root,
        optuna_storage=f"sqlite:///{root / 'studies.db'}",
        reports_dir=root / "reports",
        **kwargs,  # type: ignore[arg-type]
    )


def retrain(store: Store, registry: Registry, semver: str, seed: int, trials: int = 2) -> str:
    """What a weekly retrain leaves: a parent run with nested trial runs, an Optuna study, a
    registered version tagged with its study and Dagster run, its backtest report and study
    report; returns the version."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parent = store.new_run()
    for number in range(trials):
        store.client.create_run(
            store.experiment_id,
            run_name=f"trial-{number:03d}",
            tags={"mlflow.parentRunId": parent},
        )
    study = f"{config.MODEL_NAME}:study{seed}"
    assert registry.optuna_storage is not None and registry.reports_dir is not None
    optuna.create_study(study_name=study, storage=registry.optuna_storage).optimize(
        lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=trials
    )
    X, _ = tiny_frame(seed)
    package = ModelPackage(
        tiny_booster(seed),
        semver=semver,
        tags={"data_fingerprint": f"fp{seed}", STUDY_TAG: study, "dagster_run_id": f"d{seed}"},
        input_example=X,
        reference={"bins": {"f0": [0.0, 1.0]}, "seed": seed},
        metadata={"features": list(FEATURES), "seed": seed},
    )
    version = register(registry, package, run_id=parent).version
    for run in store.client.search_runs([store.experiment_id]):
        if run.info.run_id == parent or run.data.tags.get("mlflow.parentRunId") == parent:
            store.client.set_terminated(run.info.run_id)
    registry.reports_dir.mkdir(parents=True, exist_ok=True)
    (registry.reports_dir / f"backtest_v{version}.html").write_text(f"<p>v{version}</p>")
    (registry.reports_dir / f"optuna_d{seed}.html").write_text(f"<p>{study}</p>")
    return version
