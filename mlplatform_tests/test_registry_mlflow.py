"""register against a real MLflow sqlite store: happy path and all-or-nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from mlplatform import config
from mlplatform.registry import (
    download_model_metadata,
    download_reference,
    get_alias_version,
    latest_version,
    load_booster,
    read_intent,
    verify_export,
)
from mlplatform_tests.registry_support import (
    Store,
    make_store,
    tiny_booster,
    tiny_frame,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path / "mlflow")


def _versions(store: Store) -> list[str]:
    found = store.client.search_model_versions(f"name = '{config.MODEL_NAME}'")
    return sorted(str(mv.version) for mv in found)


def test_register_candidate_happy_path(store: Store, tmp_path: Path) -> None:
    export_root = tmp_path / "models"
    before_uri = mlflow.get_tracking_uri()
    run_id = store.new_run()
    handle = store.register("1.0.0", seed=1, export_root=export_root, run_id=run_id)

    assert handle.to_dict() == {
        "name": config.MODEL_NAME,
        "version": "1",
        "semver": "1.0.0",
        "uri": f"models:/{config.MODEL_NAME}/1",
        "run_id": run_id,
    }
    staging = get_alias_version(store.uri, config.MODEL_NAME, config.STAGING_ALIAS)
    assert staging is not None and str(staging.version) == "1"
    assert staging.tags["semver"] == "1.0.0"
    assert staging.tags["dagster_run_id"] == "dagster-1"
    assert staging.tags["data_fingerprint"] == "fp1"
    assert len(staging.tags["model_sha256"]) == 64  # what a lost or altered artifact is told by
    meta = verify_export(export_root / "staging")
    assert (meta["model_version"], meta["semver"], meta["alias"]) == ("1", "1.0.0", "staging")
    assert meta["seed"] == 1 and meta["mlflow_run_id"] == run_id
    assert download_reference(store.uri, config.MODEL_NAME, 1)["seed"] == 1
    assert download_model_metadata(store.uri, config.MODEL_NAME, "1")["seed"] == 1

    X, _ = tiny_frame(5, rows=30)
    np.testing.assert_allclose(
        load_booster(store.uri, config.MODEL_NAME, 1).predict(X), tiny_booster(1).predict(X)
    )
    # The run was written to, not ended; the global tracking URI is untouched.
    assert store.client.get_run(run_id).info.status == "RUNNING"
    assert mlflow.get_tracking_uri() == before_uri
    assert mlflow.active_run() is None

    second = store.register("1.0.1", seed=2, export_root=export_root)
    assert second.version == "2"
    assert str(latest_version(store.uri, config.MODEL_NAME).version) == "2"
    assert verify_export(export_root / "staging")["model_version"] == "2"


def test_register_inside_the_callers_active_run_keeps_it_active(
    store: Store, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(store.uri)
    try:
        with mlflow.start_run(experiment_id=store.experiment_id) as run:
            handle = store.register("1.0.0", 1, tmp_path / "models", run_id=run.info.run_id)
            assert mlflow.active_run().info.run_id == run.info.run_id
        assert handle.run_id == run.info.run_id
    finally:
        mlflow.set_tracking_uri(None)


def test_a_colliding_semver_gets_the_next_patch(store: Store, tmp_path: Path) -> None:
    """Two retrains that computed the same semver (raced) still register distinct ones."""
    export_root = tmp_path / "models"
    first = store.register("1.1.2", seed=1, export_root=export_root)
    second = store.register("1.1.2", seed=2, export_root=export_root)
    assert (first.semver, second.semver) == ("1.1.2", "1.1.3")
    registered = store.client.get_model_version(config.MODEL_NAME, second.version)
    assert registered.tags["semver"] == "1.1.3"
    assert download_model_metadata(store.uri, config.MODEL_NAME, second.version)["seed"] == 2


def test_first_candidate_failing_leaves_no_registered_model(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_alias(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", failing_alias)
    with pytest.raises(RuntimeError, match="injected"):
        store.register("1.0.0", seed=1, export_root=tmp_path / "models")
    assert store.client.search_registered_models() == []
    assert not (tmp_path / "models" / "staging").exists()
    assert read_intent(store.client, config.MODEL_NAME) is None


def test_load_booster_never_unpickles(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.register("1.0.0", seed=1, export_root=tmp_path / "models")

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pickle used on the load path")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    booster = load_booster(store.uri, config.MODEL_NAME, "1")
    assert booster.num_feature() == 3
