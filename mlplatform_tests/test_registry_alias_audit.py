"""A production alias moved outside the platform (MLflow's UI or API) is noticed and named."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform import config
from mlplatform.registry import (
    Registry,
    audit_production_alias,
    promote,
    rollback,
    unrecorded_alias_move,
)
from mlplatform_tests.registry_support import Store, make_store

NAME = config.MODEL_NAME


def _promoted(at: str, run: str = "run-promote") -> dict[str, str]:
    return {"promoted_at": at, "promoted_by": "alice", "promotion_run_id": run}


def test_alias_where_the_last_platform_move_put_it_is_fine() -> None:
    tags = {
        "1": _promoted("2026-01-01T10:00:00+00:00"),
        "2": _promoted("2026-02-01T10:00:00+00:00"),
    }
    assert unrecorded_alias_move("2", tags) is None
    assert unrecorded_alias_move(None, {"1": {}}) is None  # nothing promoted yet


def test_rollback_counts_as_a_platform_move() -> None:
    tags = {
        "1": {
            **_promoted("2026-01-01T10:00:00+00:00"),
            "rolled_back_at": "2026-03-01T10:00:00+00:00",
            "rolled_back_by": "bob",
            "rollback_run_id": "run-rollback",
        },
        "2": _promoted("2026-02-01T10:00:00+00:00"),
    }
    assert unrecorded_alias_move("1", tags) is None
    message = unrecorded_alias_move("2", tags)
    assert message is not None
    assert "production points at v2" in message
    assert "rollback of v1 by bob at 2026-03-01 10:00 UTC (run run-roll)" in message


def test_moved_to_an_unpromoted_version_names_both_versions() -> None:
    tags = {"1": _promoted("2026-01-01T10:00:00+00:00", run="abcdef1234"), "3": {}}
    message = unrecorded_alias_move("3", tags)
    assert message is not None
    assert "production points at v3" in message
    assert "promotion of v1 by alice" in message and "run abcdef12" in message
    assert "MOVED OUTSIDE THE PLATFORM" in message and "make promote" in message


def test_set_without_any_platform_promotion() -> None:
    message = unrecorded_alias_move("2", {"1": {}, "2": {}})
    assert message is not None and "v2, which the platform never promoted" in message


def test_removed_alias() -> None:
    message = unrecorded_alias_move(None, {"1": _promoted("2026-01-01T10:00:00+00:00")})
    assert message is not None and "REMOVED outside the platform" in message


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = make_store(tmp_path / "mlflow")
    for seed, semver in enumerate(("1.0.0", "1.1.0"), start=1):
        store.register(semver, seed=seed, export_root=tmp_path / "models")
    return store


def test_real_registry_move_in_mlflow_is_detected_and_a_platform_rollback_clears_it(
    store: Store, tmp_path: Path
) -> None:
    export = tmp_path / "models"
    registry = Registry(store.uri, export)
    for version in ("1", "2"):
        promote(registry, version, actor="alice", reason="checks passed", run_id=f"run-{version}")
    assert audit_production_alias(store.uri, NAME) == ("2", None)

    # What MLflow's "Promote model" button / alias editor does: only the alias moves.
    store.client.set_registered_model_alias(NAME, config.PRODUCTION_ALIAS, "1")
    version, message = audit_production_alias(store.uri, NAME)
    assert version == "1"
    assert message is not None
    assert "production points at v1" in message and "promotion of v2 by alice" in message

    store.client.set_registered_model_alias(NAME, config.PRODUCTION_ALIAS, "2")
    rollback(registry, to_version="1", actor="bob", reason="test", run_id="run-rollback")
    assert audit_production_alias(store.uri, NAME) == ("1", None)
