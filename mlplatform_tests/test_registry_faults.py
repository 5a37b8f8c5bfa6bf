"""Fault injection: kill (SIGKILL of a real subprocess) or fail every step of register, promote
and rollback, kill a prune at several points, plus a full disk, a locked database, racing
processes and damaged exports. After each, the next command or `repair` must leave registry,
aliases, tags and every export consistent (check_consistency() == []), with no orphan version
and no RUNNING MLflow run.

The base state (module-scoped, copied per test): v1, v2, v3 promoted in turn (v3 production,
v1 and v2 archived), v4 registered as staging.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from mlplatform import config
from mlplatform.registry import (
    Registry,
    RetentionPolicy,
    UnfinishedOperation,
    check_consistency,
    get_alias_version,
    promote,
    prune,
    read_intent,
    repair,
    rollback,
    verify_export,
)
from mlplatform_tests.fault_child import arm, run_operation
from mlplatform_tests.registry_support import (
    STUDY_TAG,
    Store,
    find_archive,
    make_store,
    prune_registry,
    remove_export,
    retrain,
)

NAME = config.MODEL_NAME
PROJECT_ROOT = Path(__file__).resolve().parents[1]

# (operation, step, when, nth, match): every step of each operation's protocol.
STEPS = [
    ("register", "mlplatform.registry.versions.write_intent", "after", 1, None),
    ("register", "MlflowClient.create_logged_model", "after", 1, None),
    ("register", "mlflow.lightgbm.log_model", "after", 1, None),
    ("register", "MlflowClient.create_model_version", "after", 1, None),
    ("register", "MlflowClient.set_registered_model_alias", "after", 1, None),
    ("register", "os.replace", "after", 1, r"\.staging\.link-.*"),
    ("register", "MlflowClient.delete_model_version_tag", "after", 1, None),
    ("promote", "mlplatform.registry.aliases.write_intent", "after", 1, None),
    ("promote", "MlflowClient.set_model_version_tag", "after", 1, None),
    ("promote", "MlflowClient.set_registered_model_alias", "after", 1, None),
    ("promote", "mlplatform.registry.export.write_archive", "before", 1, None),
    ("promote", "os.replace", "after", 1, r"\.production\.link-.*"),
    ("promote", "mlplatform.registry.export.remove", "before", 1, None),
    ("promote", "mlplatform.registry.aliases.clear_intent", "before", 1, None),
    ("rollback", "MlflowClient.set_model_version_tag", "after", 2, None),
    ("rollback", "MlflowClient.set_registered_model_alias", "after", 1, None),
    ("rollback", "os.replace", "after", 1, r"\.production\.link-.*"),
    ("rollback", "mlplatform.registry.aliases.clear_intent", "before", 1, None),
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
        promote(Registry(store.uri, models), version, actor="setup", reason="base", run_id="setup")
    _end_own_runs(store)  # registry_support leaves its runs open
    assert check_consistency(Registry(store.uri, models)) == []
    return store, models


@pytest.fixture
def world(base: tuple[Store, Path], tmp_path: Path) -> tuple[Store, Path]:
    store, models = base
    export_root = tmp_path / "models"
    shutil.copytree(models, export_root, symlinks=True)
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
    problems = check_consistency(Registry(store.uri, export_root))
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
    registry = Registry(store.uri, export_root)
    left = check_consistency(registry)
    print(f"\nFAULT kill {op} {target} {when}{nth}: {len(left)} problem(s) before repair")
    report = repair(registry)
    assert report.convergence.runs_ended  # the killed process's MLflow run was RUNNING
    _assert_consistent(store, export_root)
    _assert_outcome(store, export_root, op)
    assert not repair(registry).changed  # idempotent
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
    when = "before" if target == "os.replace" else when  # a rename either happens or raises
    with monkeypatch.context() as patch:
        arm(
            {"target": target, "when": when, "nth": nth, "match": match, "action": "raise"},
            patch.setattr,
        )
        with pytest.raises(Exception, match="injected fault") as raised:
            run_operation(op, store.uri, export_root, store.experiment_id)
    registry = Registry(store.uri, export_root)
    left = check_consistency(registry, run_alive=_any)
    print(
        f"\nFAULT error {op} {target} {when}{nth}: {raised.type.__name__}, {len(left)} problem(s)"
    )
    # Only a failure of the final clear_intent may leave the (finished) intent behind.
    assert len(left) == (1 if target.endswith("clear_intent") else 0)
    assert [str(p) for p in left if p.what != "intent"] == []
    repair(registry, run_alive=_any)
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
    registry = Registry(store.uri, export_root)
    record = rollback(registry, actor="ops", reason="again", run_id="rb-2")
    assert record.finished_after_crash and record.to_version == "2" and record.from_version == "3"
    assert _alias(store, "production") == "2"  # not v1
    repair(registry)
    _assert_consistent(store, export_root)


def test_the_next_register_cleans_the_orphan_of_a_killed_one(world: tuple[Store, Path]) -> None:
    store, export_root = world
    child = _spawn(
        store, export_root, "register",
        target="MlflowClient.create_model_version", when="after", nth=1, action="kill",
    )  # fmt: skip
    child.communicate(timeout=120)
    assert child.returncode == -9 and read_intent(store.client, NAME) is not None
    assert "5" in {str(mv.version) for mv in store.client.search_model_versions(f"name = '{NAME}'")}
    child = _spawn(store, export_root, "register")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]
    assert out.strip() == "6" and _alias(store, config.STAGING_ALIAS) == "6"
    versions = {str(mv.version) for mv in store.client.search_model_versions(f"name = '{NAME}'")}
    assert versions == {"1", "2", "3", "4", "6"}  # the orphan v5 is gone
    repair(Registry(store.uri, export_root))  # ends the killed run
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
    pending = check_consistency(Registry(store.uri, export_root))
    assert any("orphan" in str(p) for p in pending)  # one orphan at a time, never more
    assert sum("orphan" in str(p) for p in pending) == 1
    repair(Registry(store.uri, export_root))
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
    registry = Registry(store.uri, export_root)
    promote(registry, "5", actor="a", reason="r", run_id="p5")
    promote(registry, "6", actor="a", reason="r", run_id="p6")
    assert find_archive(export_root, "5") != find_archive(export_root, "6")
    _assert_consistent(store, export_root)


def test_damaged_exports_are_rebuilt_from_the_registry(world: tuple[Store, Path]) -> None:
    store, export_root = world
    (export_root / "staging" / "model.txt").write_text("corrupt")
    remove_export(export_root / "production")
    archive_v2 = find_archive(export_root, "2")
    assert archive_v2 is not None
    (archive_v2 / "metadata.json").write_text("{}")
    remove_export(find_archive(export_root, "1"))
    (export_root / ".production.tmp-0123456789ab").mkdir()
    (export_root / ".production.old-0123456789ab").mkdir()
    registry = Registry(store.uri, export_root)
    problems = check_consistency(registry)
    assert len(problems) >= 5, problems
    repair(registry)
    _assert_consistent(store, export_root)
    assert verify_export(archive_v2)["model_version"] == "2"
    record = rollback(registry, to_version="1", actor="ops", reason="lost archive", run_id="rb")
    assert record.to_version == "1" == _alias(store, "production")
    _assert_consistent(store, export_root)


@pytest.fixture
def lost_v3(world: tuple[Store, Path]) -> Iterator[None]:
    """v3's model files gone from the registry's artifact store (moved away, and put back
    after the test: the module's stores share their artifacts)."""
    store, _ = world
    folder = Path(store.client.get_model_version_download_uri(NAME, "3").removeprefix("file://"))
    aside = folder.with_name(folder.name + ".lost")
    folder.rename(aside)
    try:
        yield
    finally:
        aside.rename(folder)


def test_a_lost_registry_artifact_is_named_and_never_wedges_the_platform(
    world: tuple[Store, Path], lost_v3: None
) -> None:
    """Production's MLflow files deleted, then its export and archive copies damaged too: the
    checker and repair name the loss, a rollback to the intact previous version works (the
    leaving version is recorded as lost, not required), and every later command runs."""
    store, export_root = world
    registry = Registry(store.uri, export_root)
    problems = [str(p) for p in check_consistency(registry)]
    assert any(p.startswith("registry: v3 (production)") and "gone" in p for p in problems)
    report = repair(registry)
    assert any(loss.startswith("v3 (production)") for loss in report.losses)
    assert "everything" not in " ".join(report.lines())
    (export_root / "production" / "model.txt").write_text("damaged")
    archive = find_archive(export_root, "3")
    assert archive is not None
    (archive / "model.txt").write_text("damaged")
    report = repair(registry)  # names, does not crash
    assert report.convergence.projection.losses
    record = rollback(registry, actor="ops", reason="v3 is lost", run_id="rb")
    assert (record.from_version, record.to_version) == ("3", "2")
    assert any("v3" in loss for loss in record.losses)
    assert _alias(store, "production") == "2"
    assert verify_export(export_root / "production")["model_version"] == "2"
    assert read_intent(store.client, NAME) is None  # nothing left to block the next command
    promote(registry, "4", actor="ops", reason="healthy staging", run_id="p4")
    assert _alias(store, "production") == "4"
    left = [str(p) for p in check_consistency(registry)]
    assert left and all("v3" in p or "-r3_" in p for p in left), left  # only v3's loss remains


def test_the_next_promotion_undoes_a_killed_registration_first(world: tuple[Store, Path]) -> None:
    """Killed between creating the version and moving staging: the next promote finishes the
    cleanup (orphan, intent, export, the dead run's MLflow run) and promotes the validated
    staging version it was asked for."""
    store, export_root = world
    child = _spawn(
        store, export_root, "register",
        target="MlflowClient.create_model_version", when="after", nth=1, action="kill",
    )  # fmt: skip
    child.communicate(timeout=120)
    assert child.returncode == -9 and read_intent(store.client, NAME) is not None
    record = promote(Registry(store.uri, export_root), "4", actor="ops", reason="r", run_id="p")
    assert record.version == "4" == _alias(store, "production")
    assert "unfinished registration of 1.3.0" in record.converged and "undone" in record.converged
    assert "MLflow run(s) of dead processes ended" in record.converged
    _assert_consistent(store, export_root)


# --- prune ------------------------------------------------------------------------------------
# (step, when, nth): the intent, each version, a nested run, a model's files, a study, the clear.
PRUNE_STEPS = [
    ("mlplatform.registry.prune.write_intent", "after", 1),
    ("MlflowClient.delete_model_version", "after", 1),
    ("MlflowClient.delete_model_version", "after", 2),
    ("MlflowClient.delete_run", "after", 3),
    ("MlflowClient.delete_logged_model", "after", 1),
    ("optuna.delete_study", "after", 1),
    ("mlplatform.registry.prune.clear_intent", "before", 1),
]


@pytest.fixture
def prunable(world: tuple[Store, Path]) -> tuple[Store, Path, dict[str, list[str]]]:
    """The base plus three retrains (v5, v6, v7: runs with trial runs, a study and a report each)
    and v4 promoted: v4 production, v3 its previous, v1-v4 archived, v7 staging. Keeping the
    last one, a prune removes v5 and v6 (their files are this test's own, not the base's)."""
    store, export_root = world
    registry = prune_registry(store.uri, export_root)
    for seed in (5, 6, 7):
        retrain(store, registry, f"1.{seed}.0", seed)
    promote(registry, "4", actor="setup", reason="prune base", run_id="setup")
    going = prune(registry, RetentionPolicy(1, 0), dry_run=True).removal
    assert going.versions == ["5", "6"]
    return store, export_root, going.to_dict()


def _assert_pruned(store: Store, export_root: Path, going: dict[str, list[str]]) -> None:
    """v5 and v6 went with everything of theirs; no protected version lost anything."""
    registry = prune_registry(store.uri, export_root)
    versions = {
        str(mv.version): mv for mv in store.client.search_model_versions(f"name = '{NAME}'")
    }
    assert sorted(versions, key=int) == ["1", "2", "3", "4", "7"]
    assert (_alias(store, "production"), _alias(store, config.STAGING_ALIAS)) == ("4", "7")
    for version in ("1", "2", "3", "4"):
        assert verify_export(find_archive(export_root, version))["model_version"] == version
    runs = {r.info.run_id for r in store.client.search_runs([store.experiment_id])}
    assert runs.isdisjoint(going["runs"])
    assert store.client.get_run(versions["7"].run_id).info.lifecycle_stage == "active"
    studies = set(optuna.get_all_study_names(registry.optuna_storage))
    assert studies.isdisjoint(going["studies"]) and versions["7"].tags[STUDY_TAG] in studies
    assert registry.reports_dir is not None
    assert sorted(p.name for p in registry.reports_dir.iterdir()) == [
        "backtest_v7.html",
        "optuna_d7.html",
    ]


@pytest.mark.parametrize(
    ("target", "when", "nth"),
    PRUNE_STEPS,
    ids=[f"{t.rsplit('.', 1)[1]}-{w}{n}" for t, w, n in PRUNE_STEPS],
)
def test_sigkill_mid_prune_then_repair_finishes_it(
    prunable: tuple[Store, Path, dict[str, list[str]]], target: str, when: str, nth: int
) -> None:
    store, export_root, going = prunable
    child = _spawn(store, export_root, "prune", target=target, when=when, nth=nth, action="kill")
    _out, err = child.communicate(timeout=120)
    assert child.returncode == -9, err[-2000:]
    registry = prune_registry(store.uri, export_root)
    left = check_consistency(registry)
    # In between, the checker sees only the unfinished prune and the dead process's run.
    assert [p.what for p in left if not p.what.startswith("MLflow run")] == ["intent"]
    assert "unfinished prune of v5, v6" in str(left[0])
    report = repair(registry)
    assert [r.describe().split(" (")[0] for r in report.convergence.recovered] == [
        "unfinished prune of v5, v6"
    ]
    _assert_consistent(store, export_root)
    _assert_pruned(store, export_root, going)
    assert not repair(registry).changed  # idempotent


def test_a_prune_that_fails_part_way_keeps_its_intent_for_the_next_command(
    prunable: tuple[Store, Path, dict[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, export_root, going = prunable
    registry = prune_registry(store.uri, export_root)
    with monkeypatch.context() as patch:
        arm(
            {"target": "MlflowClient.delete_run", "when": "after", "nth": 2, "action": "raise"},
            patch.setattr,
        )
        with pytest.raises(UnfinishedOperation, match="make repair"):
            prune(registry, RetentionPolicy(1, 0))
    assert [p.what for p in check_consistency(registry, run_alive=_any)] == ["intent"]
    record = promote(registry, "4", actor="ops", reason="r", run_id="p")  # the next command
    assert "unfinished prune of v5, v6" in record.converged
    _end_own_runs(store)
    _assert_consistent(store, export_root)
    _assert_pruned(store, export_root, going)
