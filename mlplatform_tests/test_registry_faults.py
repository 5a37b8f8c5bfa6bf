"""Fault injection: kill (SIGKILL of a real subprocess) or fail every step of register, promote
and rollback, plus a full disk, a locked database, racing processes and damaged exports. After
each, the next command or `repair` must leave registry, aliases, tags and every export
consistent (check_consistency() == []), with no orphan version and no RUNNING MLflow run.

The base state (module-scoped, copied per test): v1, v2, v3 promoted in turn (v3 production,
v1 and v2 archived), v4 registered as staging.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform import config
from mlplatform.registry import (
    check_consistency,
    find_archive,
    get_alias_version,
    promote,
    read_intent,
    repair,
    rollback,
    verify_export,
)
from mlplatform_tests.fault_child import arm, run_operation
from mlplatform_tests.registry_support import Store, make_store

NAME = config.MODEL_NAME
PROJECT_ROOT = Path(__file__).resolve().parents[1]

# (operation, step, when, nth, match): every step of each operation's protocol.
STEPS = [
    ("register", "mlplatform.registry.mlflow_registry.write_intent", "after", 1, None),
    ("register", "MlflowClient.create_logged_model", "after", 1, None),
    ("register", "mlflow.lightgbm.log_model", "after", 1, None),
    ("register", "MlflowClient.create_model_version", "after", 1, None),
    ("register", "MlflowClient.set_registered_model_alias", "after", 1, None),
    ("register", "os.rename", "after", 1, "staging"),
    ("register", "MlflowClient.delete_model_version_tag", "after", 1, None),
    ("promote", "mlplatform.registry.promotion.write_intent", "after", 1, None),
    ("promote", "MlflowClient.set_model_version_tag", "after", 1, None),
    ("promote", "MlflowClient.set_registered_model_alias", "after", 1, None),
    ("promote", "mlplatform.registry.mlflow_registry.write_export", "before", 1, None),
    ("promote", "os.rename", "after", 1, "production"),
    ("promote", "mlplatform.registry.promotion.prune_archive", "before", 1, None),
    ("promote", "mlplatform.registry.promotion.clear_intent", "before", 1, None),
    ("rollback", "MlflowClient.set_model_version_tag", "after", 2, None),
    ("rollback", "MlflowClient.set_registered_model_alias", "after", 1, None),
    ("rollback", "os.rename", "after", 1, "production"),
    ("rollback", "mlplatform.registry.promotion.clear_intent", "before", 1, None),
]
# Indices of STEPS after which the operation's alias has moved (its commit point).
COMMITTED = {4, 5, 6, 9, 10, 11, 12, 13, 15, 16, 17}
IDS = [f"{op}-{target.rsplit('.', 1)[1]}-{when}{nth}" for op, target, when, nth, _ in STEPS]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    root = tmp_path_factory.mktemp("faults")
    store = make_store(root / "mlflow")
    models = root / "models"
    for seed, semver in enumerate(("1.0.0", "1.1.0", "1.2.0", "1.2.1"), start=1):
        store.register(semver, seed=seed, export_root=models)
    for version in ("1", "2", "3"):
        promote(
            tracking_uri=store.uri, name=NAME, version=version, export_root=models,
            actor="setup", reason="base", run_id="setup",
        )  # fmt: skip
    _end_own_runs(store)  # registry_support leaves its runs open
    assert check_consistency(tracking_uri=store.uri, export_root=models) == []
    return store, models


@pytest.fixture
def world(base: tuple[Store, Path], tmp_path: Path) -> tuple[Store, Path]:
    store, models = base
    export_root = tmp_path / "models"
    shutil.copytree(models, export_root)
    return store.copy_to(tmp_path / "mlflow"), export_root


def _spawn(store: Store, export_root: Path, op: str, **fault: object) -> subprocess.Popen:
    spec = {
        "op": op,
        "uri": store.uri,
        "export_root": str(export_root),
        "experiment_id": store.experiment_id,
        **fault,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mlplatform_tests.fault_child", json.dumps(spec)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alias(store: Store, alias: str) -> str | None:
    mv = get_alias_version(store.uri, NAME, alias)
    return None if mv is None else str(mv.version)


def _assert_consistent(store: Store, export_root: Path) -> None:
    problems = check_consistency(tracking_uri=store.uri, export_root=export_root)
    assert problems == [], "\n".join(map(str, problems))
    versions = store.client.search_model_versions(f"name = '{NAME}'")
    assert not [mv.version for mv in versions if "mlplatform.pending" in mv.tags]
    running = store.client.search_runs(
        [store.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    assert running == []


def _assert_outcome(store: Store, export_root: Path, op: str, step_committed: bool = False) -> None:
    """The operation either happened completely or not at all."""
    staging, production = _alias(store, config.STAGING_ALIAS), _alias(store, "production")
    if op == "register":
        assert production == "3" and staging in {"4", "5"}
        if step_committed:  # the staging alias had moved: the registration is finished
            assert staging == "5"
        assert verify_export(export_root / "staging")["model_version"] == staging
    elif op == "promote":
        assert production in {"3", "4"}
        if step_committed:
            assert production == "4"
    else:
        assert production in {"3", "2"}
        if step_committed:
            assert production == "2"
    assert verify_export(export_root / "production")["model_version"] == production


@pytest.mark.parametrize(("op", "target", "when", "nth", "match"), STEPS, ids=IDS)
def test_sigkill_at_each_step_then_repair(
    world: tuple[Store, Path], op: str, target: str, when: str, nth: int, match: str | None
) -> None:
    store, export_root = world
    child = _spawn(
        store, export_root, op, target=target, when=when, nth=nth, match=match, action="kill"
    )
    _out, err = child.communicate(timeout=120)
    assert child.returncode == -9, err[-2000:]
    left = check_consistency(tracking_uri=store.uri, export_root=export_root)
    print(f"\nFAULT kill {op} {target} {when}{nth}: {len(left)} problem(s) before repair")
    report = repair(tracking_uri=store.uri, export_root=export_root)
    assert report.runs_ended  # the killed process's MLflow run was RUNNING
    _assert_consistent(store, export_root)
    _assert_outcome(store, export_root, op)
    assert not repair(tracking_uri=store.uri, export_root=export_root).changed  # idempotent
    # A kill after the commit point (the alias move) is rolled forward, never lost.
    _assert_outcome(
        store,
        export_root,
        op,
        step_committed=STEPS.index((op, target, when, nth, match)) in COMMITTED,
    )


@pytest.mark.parametrize(("op", "target", "when", "nth", "match"), STEPS, ids=IDS)
def test_error_at_each_step_is_undone_or_repaired(
    world: tuple[Store, Path],
    monkeypatch: pytest.MonkeyPatch,
    op: str,
    target: str,
    when: str,
    nth: int,
    match: str | None,
) -> None:
    """An error (a lost response: the call landed, the caller saw a failure) at each step."""
    store, export_root = world
    when = "before" if target == "os.rename" else when  # a rename either happens or raises
    with monkeypatch.context() as patch:
        arm(
            {"target": target, "when": when, "nth": nth, "match": match, "action": "raise"},
            patch.setattr,
        )
        with pytest.raises(Exception, match="injected fault") as raised:
            run_operation(op, store.uri, export_root, store.experiment_id)
    left = check_consistency(tracking_uri=store.uri, export_root=export_root, run_alive=_any)
    print(
        f"\nFAULT error {op} {target} {when}{nth}: {raised.type.__name__}, {len(left)} problem(s)"
    )
    # Only a failure of the final clear_intent may leave the (finished) intent behind.
    assert len(left) == (1 if target.endswith("clear_intent") else 0)
    assert [str(p) for p in left if ".intent.json" not in str(p)] == []
    repair(tracking_uri=store.uri, export_root=export_root, run_alive=_any)
    _end_own_runs(store)
    _assert_consistent(store, export_root)
    _assert_outcome(store, export_root, op)


def _any(_run: object) -> bool:
    return True  # in-process: the test's own runs are alive; only the registry is checked


def _end_own_runs(store: Store) -> None:
    for run in store.client.search_runs(
        [store.experiment_id], filter_string="attributes.status = 'RUNNING'"
    ):
        store.client.set_terminated(run.info.run_id, status="FAILED")


def test_rerunning_a_killed_rollback_does_not_go_further_back(world: tuple[Store, Path]) -> None:
    store, export_root = world
    child = _spawn(
        store, export_root, "rollback",
        target="MlflowClient.set_registered_model_alias", when="after", nth=1, action="kill",
    )  # fmt: skip
    child.communicate(timeout=120)
    assert child.returncode == -9 and _alias(store, "production") == "2"
    record = rollback(
        tracking_uri=store.uri, name=NAME, export_root=export_root,
        actor="ops", reason="again", run_id="rb-2",
    )  # fmt: skip
    assert record.finished_after_crash and record.to_version == "2" and record.from_version == "3"
    assert _alias(store, "production") == "2"  # not v1
    repair(tracking_uri=store.uri, export_root=export_root)
    _assert_consistent(store, export_root)


def test_the_next_register_cleans_the_orphan_of_a_killed_one(world: tuple[Store, Path]) -> None:
    store, export_root = world
    child = _spawn(
        store, export_root, "register",
        target="MlflowClient.create_model_version", when="after", nth=1, action="kill",
    )  # fmt: skip
    child.communicate(timeout=120)
    assert child.returncode == -9 and read_intent(export_root) is not None
    assert "5" in {str(mv.version) for mv in store.client.search_model_versions(f"name = '{NAME}'")}
    child = _spawn(store, export_root, "register")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]
    assert out.strip() == "6" and _alias(store, config.STAGING_ALIAS) == "6"
    versions = {str(mv.version) for mv in store.client.search_model_versions(f"name = '{NAME}'")}
    assert versions == {"1", "2", "3", "4", "6"}  # the orphan v5 is gone
    repair(tracking_uri=store.uri, export_root=export_root)  # ends the killed run
    _assert_consistent(store, export_root)


@pytest.mark.parametrize("op", ["register", "promote", "rollback"])
def test_full_disk_changes_nothing(
    world: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    store, export_root = world
    before = (_alias(store, "staging"), _alias(store, "production"))
    with monkeypatch.context() as patch:
        arm(
            {
                "target": "mlplatform.registry.export._write_file",
                "when": "before",
                "nth": 1,
                "action": "enospc",
            },
            patch.setattr,
        )
        with pytest.raises(Exception, match="No space left on device"):
            run_operation(op, store.uri, export_root, store.experiment_id)
    _end_own_runs(store)
    assert (_alias(store, "staging"), _alias(store, "production")) == before
    _assert_consistent(store, export_root)  # without any repair


def test_locked_database_leaves_no_orphan_version(
    world: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_model_version lands, then the database stays locked: every undo fails too."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    store, export_root = world

    def locked(*_args: object, **_kwargs: object) -> None:
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    with monkeypatch.context() as patch:
        for method in (
            "set_registered_model_alias",
            "delete_model_version",
            "delete_registered_model_alias",
        ):
            patch.setattr(MlflowClient, method, locked)
        for _attempt in range(3):  # as Dagster's RetryPolicy would
            with pytest.raises(MlflowException, match="database is locked"):
                run_operation("register", store.uri, export_root, store.experiment_id)
    _end_own_runs(store)
    pending = check_consistency(tracking_uri=store.uri, export_root=export_root)
    assert any("orphan" in str(p) for p in pending)  # one orphan at a time, never more
    assert sum("orphan" in str(p) for p in pending) == 1
    repair(tracking_uri=store.uri, export_root=export_root)
    _assert_consistent(store, export_root)
    assert _alias(store, config.STAGING_ALIAS) == "4"


def test_two_processes_promoting_at_once(world: tuple[Store, Path]) -> None:
    store, export_root = world
    children = [_spawn(store, export_root, f"promote:{v}") for v in ("4", "1")]
    for child in children:
        _out, err = child.communicate(timeout=180)
        assert child.returncode == 0, err[-2000:]
    production = _alias(store, "production")
    assert production in {"4", "1"}
    assert verify_export(export_root / "production")["model_version"] == production
    _assert_consistent(store, export_root)


def test_two_processes_registering_the_same_semver(world: tuple[Store, Path]) -> None:
    store, export_root = world
    children = [_spawn(store, export_root, "register") for _ in range(2)]
    for child in children:
        _out, err = child.communicate(timeout=180)
        assert child.returncode == 0, err[-2000:]
    semvers = {
        str(mv.version): mv.tags["semver"]
        for mv in store.client.search_model_versions(f"name = '{NAME}'")
    }
    assert (semvers["5"], semvers["6"]) == ("1.3.0", "1.3.1")
    promote(
        tracking_uri=store.uri, name=NAME, version="5", export_root=export_root,
        actor="a", reason="r", run_id="p5",
    )  # fmt: skip
    promote(
        tracking_uri=store.uri, name=NAME, version="6", export_root=export_root,
        actor="a", reason="r", run_id="p6",
    )  # fmt: skip
    assert find_archive(export_root, NAME, "5") != find_archive(export_root, NAME, "6")
    _assert_consistent(store, export_root)


def test_damaged_exports_are_rebuilt_from_the_registry(world: tuple[Store, Path]) -> None:
    store, export_root = world
    (export_root / "staging" / "model.txt").write_text("corrupt")
    shutil.rmtree(export_root / "production")
    archive_v2 = find_archive(export_root, NAME, "2")
    (archive_v2 / "metadata.json").write_text("{}")
    shutil.rmtree(find_archive(export_root, NAME, "1"))
    (export_root / ".production.tmp-0123456789ab").mkdir()
    (export_root / ".production.old-0123456789ab").mkdir()
    problems = check_consistency(tracking_uri=store.uri, export_root=export_root)
    assert len(problems) >= 5, problems
    repair(tracking_uri=store.uri, export_root=export_root)
    _assert_consistent(store, export_root)
    assert verify_export(archive_v2)["model_version"] == "2"
    # v1's archive was lost: rolling back to it rebuilds it from the registry.
    record = rollback(
        tracking_uri=store.uri, name=NAME, to_version="1", export_root=export_root,
        actor="ops", reason="lost archive", run_id="rb",
    )  # fmt: skip
    assert record.to_version == "1" == _alias(store, "production")
    _assert_consistent(store, export_root)
