"""promote / rollback / repair against a real MLflow sqlite store and a temp models/ export."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import cloudpickle
import pytest
from mlflow import MlflowClient

from mlplatform import config
from mlplatform.registry import (
    PromotionError,
    PromotionRecord,
    Registry,
    RollbackError,
    RollbackRecord,
    get_alias_version,
    list_archive,
    load_export_booster,
    promote,
    read_intent,
    repair,
    rollback,
    verify_export,
)
from mlplatform.registry import export as export_module
from mlplatform_tests.registry_support import (
    Store,
    find_archive,
    make_store,
    remove_export,
    snapshot,
)

NAME = config.MODEL_NAME
SEMVERS = ("1.0.0", "1.1.0", "1.2.0")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Three registered versions (1, 2, 3); each test works on its own copy of the database."""
    root = tmp_path_factory.mktemp("seeded")
    store = make_store(root / "mlflow")
    for seed, semver in enumerate(SEMVERS, start=1):
        store.register(semver, seed=seed, export_root=root / "seed-models")
    return store


@pytest.fixture
def store(seeded: Store, tmp_path: Path) -> Store:
    return seeded.copy_to(tmp_path / "mlflow")


@pytest.fixture
def export_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


def _promote(
    store: Store, export_root: Path, version: str, retention: int = 10, **kwargs
) -> PromotionRecord:
    params = {"actor": "alice", "reason": f"checks passed for v{version}", "run_id": "run-x"}
    registry = Registry(store.uri, export_root, retention=retention)
    return promote(registry, version, **(params | kwargs))


def _rollback(store: Store, export_root: Path, **kwargs) -> RollbackRecord:
    params = {"actor": "c", "reason": "r", "run_id": "rb"}
    return rollback(Registry(store.uri, export_root), **(params | kwargs))


def _production(store: Store) -> str | None:
    mv = get_alias_version(store.uri, NAME, config.PRODUCTION_ALIAS)
    return None if mv is None else str(mv.version)


def _exported_version(export_root: Path) -> str:
    return verify_export(export_root / "production")["model_version"]


def _tags(store: Store, version: str) -> dict[str, str]:
    return dict(store.client.get_model_version(NAME, version).tags)


def test_first_promotion(store: Store, export_root: Path) -> None:
    record = _promote(store, export_root, "1")
    assert _production(store) == "1" == _exported_version(export_root)
    assert record.previous_version is None and not record.repaired
    assert (record.actor, record.run_id, record.semver) == ("alice", "run-x", "1.0.0")
    tags = _tags(store, "1")
    assert tags["promoted_by"] == "alice" and tags["promotion_run_id"] == "run-x"
    assert tags["promotion_reason"] == "checks passed for v1" and tags["override"] == "false"
    assert tags["promoted_at"] == record.promoted_at
    meta = verify_export(export_root / "production")
    assert meta["alias"] == "production" and meta["promotion"]["promoted_by"] == "alice"
    archive = Path(record.archive_dir)
    assert archive.name.startswith("v1.0.0-r1_") and verify_export(archive)["model_version"] == "1"
    assert (archive / "model.txt").read_bytes() == (
        export_root / "production/model.txt"
    ).read_bytes()
    assert record.to_dict()["version"] == "1"


def test_second_promotion_archives_the_previous(store: Store, export_root: Path) -> None:
    _promote(store, export_root, "1")
    record = _promote(store, export_root, "2", override=True, reason="manual: data vendor fix")
    assert _production(store) == "2" == _exported_version(export_root)
    assert (record.previous_version, record.previous_semver) == ("1", "1.0.0")
    assert record.override and record.reason == "manual: data vendor fix"
    old = _tags(store, "1")
    assert old[config.ARCHIVED_TAG] == "true" and old["archived_at"] == record.promoted_at
    new = _tags(store, "2")
    assert config.ARCHIVED_TAG not in new and new["previous_production_version"] == "1"
    assert new["override"] == "true"
    assert [p.name.split("_")[0] for p in list_archive(export_root / "archive")] == [
        "v1.0.0-r1",
        "v1.1.0-r2",
    ]


def test_promotion_refuses_override_without_reason(store: Store, export_root: Path) -> None:
    with pytest.raises(PromotionError, match="override"):
        _promote(store, export_root, "1", override=True, reason="  ")
    assert _production(store) is None and not export_root.joinpath("production").exists()


def test_failure_before_alias_move_restores_tags(
    store: Store, export_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _promote(store, export_root, "1")
    before = (_tags(store, "2"), snapshot(export_root))

    def failing_alias(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", failing_alias)
    with pytest.raises(PromotionError, match="undone: production is unchanged \\(v1\\)"):
        _promote(store, export_root, "2")
    assert _production(store) == "1" and read_intent(store.client, NAME) is None
    assert (_tags(store, "2"), snapshot(export_root)) == before


def test_failure_after_alias_move_is_undone(
    store: Store, export_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing models/production: the alias goes back, nothing half done."""
    _promote(store, export_root, "1")
    before = (_tags(store, "1"), _tags(store, "2"), snapshot(export_root / "production"))

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "publish", full_disk)
    with pytest.raises(PromotionError, match="No space left on device"):
        _promote(store, export_root, "2")
    assert _production(store) == "1" and read_intent(store.client, NAME) is None
    after = (_tags(store, "1"), _tags(store, "2"), snapshot(export_root / "production"))
    assert after == before


def test_promoting_the_production_version_again_resyncs_its_export(
    store: Store, export_root: Path
) -> None:
    _promote(store, export_root, "1")
    (export_root / "production" / "model.txt").write_text("tampered")
    record = _promote(store, export_root, "1", actor="bob", reason="re-run")
    assert record.repaired and record.export_rewritten and record.actor == "alice"
    assert _exported_version(export_root) == "1"
    again = _promote(store, export_root, "1")
    assert again.repaired and not again.export_rewritten  # idempotent


def test_repair_rebuilds_a_missing_production_export(store: Store, export_root: Path) -> None:
    registry = Registry(store.uri, export_root)
    assert repair(registry).production_version is None
    _promote(store, export_root, "1")
    _promote(store, export_root, "2")
    remove_export(export_root / "production")
    remove_export(find_archive(export_root, "2"))
    report = repair(registry)
    rebuilt = report.convergence.projection.changed
    assert report.production_version == "2" and "production (v2)" in rebuilt
    assert _exported_version(export_root) == "2"
    assert not repair(registry).changed


def test_racing_promotions_stay_consistent(store: Store, export_root: Path) -> None:
    _promote(store, export_root, "1")
    barrier = threading.Barrier(2)
    records: dict[str, PromotionRecord] = {}
    errors: list[BaseException] = []

    def worker(version: str) -> None:
        try:
            barrier.wait()
            records[version] = _promote(store, export_root, version, actor=f"user{version}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(v,)) for v in ("2", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    winner = _production(store)
    loser = "3" if winner == "2" else "2"
    assert winner in {"2", "3"} and _exported_version(export_root) == winner
    assert records[winner].previous_version == loser  # serialized: the winner replaced the loser
    assert records[loser].previous_version == "1"
    assert _tags(store, loser)[config.ARCHIVED_TAG] == "true"
    assert _tags(store, "1")[config.ARCHIVED_TAG] == "true"
    meta = verify_export(export_root / "production")
    assert meta["promotion"]["promoted_by"] == f"user{winner}"


def test_rollback_to_previous(store: Store, export_root: Path) -> None:
    _promote(store, export_root, "1")
    _promote(store, export_root, "2")
    record = _rollback(store, export_root, actor="carol", reason="v2 misbehaves", run_id="rb-1")
    assert (record.from_version, record.to_version, record.to_semver) == ("2", "1", "1.0.0")
    assert _production(store) == "1" == _exported_version(export_root)
    archive_v1 = find_archive(export_root, "1")
    assert (export_root / "production/model.txt").read_bytes() == (
        archive_v1 / "model.txt"
    ).read_bytes()
    meta = verify_export(export_root / "production")
    assert meta["rollback"]["rolled_back_by"] == "carol"
    assert meta["rollback"]["rollback_from_version"] == "2"
    tags1, tags2 = _tags(store, "1"), _tags(store, "2")
    assert config.ARCHIVED_TAG not in tags1 and tags1["rollback_reason"] == "v2 misbehaves"
    assert tags2[config.ARCHIVED_TAG] == "true"
    assert record.duration_s >= 0.0
    load_export_booster(export_root / "production")


def test_rollback_rebuilds_a_corrupted_archive_from_the_registry(
    store: Store, export_root: Path
) -> None:
    _promote(store, export_root, "1")
    _promote(store, export_root, "2")
    archive_v1 = find_archive(export_root, "1")
    model = archive_v1 / "model.txt"
    original = model.read_bytes()
    model.write_text(model.read_text().replace("Tree=0", "Tree=9", 1))
    _rollback(store, export_root, actor="carol")
    assert _production(store) == "1" == _exported_version(export_root)
    assert (export_root / "production/model.txt").read_bytes() == original
    verify_export(archive_v1)


def test_rollback_refuses_a_version_never_in_production(store: Store, export_root: Path) -> None:
    _promote(store, export_root, "1")
    with pytest.raises(RollbackError, match="records no previous production"):
        _rollback(store, export_root)
    with pytest.raises(RollbackError, match="never production"):
        _rollback(store, export_root, to_version="3")
    assert _production(store) == "1"


def test_rollback_validates_its_inputs_before_anything_moves(
    store: Store, export_root: Path
) -> None:
    _promote(store, export_root, "1")
    _promote(store, export_root, "2")
    before = (_production(store), _tags(store, "1"), _tags(store, "2"), snapshot(export_root))
    with pytest.raises(RollbackError, match="100,001 characters; the limit is 1,000"):
        _rollback(store, export_root, reason="x" * 100_001)
    with pytest.raises(RollbackError, match="'v1' is not a registry version"):
        _rollback(store, export_root, to_version="v1")
    after = (_production(store), _tags(store, "1"), _tags(store, "2"), snapshot(export_root))
    assert after == before


def test_retention_prunes_old_archives(store: Store, export_root: Path) -> None:
    for version in ("1", "2"):
        _promote(store, export_root, version, retention=2)
    record = _promote(store, export_root, "3", retention=2)
    assert [Path(p).name.split("_")[0] for p in record.pruned] == ["v1.0.0-r1"]
    assert [p.name.split("_")[0] for p in list_archive(export_root / "archive")] == [
        "v1.1.0-r2",
        "v1.2.0-r3",
    ]


def test_promotion_and_rollback_never_unpickle(
    store: Store, export_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pickle used on the promotion path")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", forbidden)
        monkeypatch.setattr(module, "loads", forbidden)
    _promote(store, export_root, "1")
    _promote(store, export_root, "2")
    _rollback(store, export_root)
    assert _production(store) == "1"


def test_rollback_rebuilds_an_unloadable_model_with_matching_checksums(
    store: Store, export_root: Path
) -> None:
    """Checksums only prove the bytes are what was written; the model must also load."""
    _promote(store, export_root, "1")
    _promote(store, export_root, "2")
    archive_v1 = find_archive(export_root, "1")
    meta = verify_export(archive_v1)
    export_module.write_archive(archive_v1, "not a lightgbm model\n", meta)
    _rollback(store, export_root)
    assert _production(store) == "1" == _exported_version(export_root)
    load_export_booster(export_root / "production")
