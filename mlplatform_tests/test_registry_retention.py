"""Retention: the policy's rules and protections (pure), a dry run that changes nothing, and a
real prune against a real MLflow store, Optuna storage and reports folder that removes exactly
what it planned. Kills mid-prune are in test_registry_faults.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.entities import ViewType

from mlplatform import config
from mlplatform.definitions import retention_policy
from mlplatform.registry import (
    Intent,
    Protection,
    Registered,
    Registry,
    RetentionPolicy,
    check_consistency,
    plan_prune,
    promote,
    prune,
)
from mlplatform.registry.journal import write_intent
from mlplatform.registry.prune import _roles
from mlplatform_tests.registry_support import (
    Store,
    make_store,
    prune_registry,
    retrain,
    snapshot,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _weekly(n: int) -> list[Registered]:
    """v1..vn, one a week, vn registered a day before NOW."""
    return [Registered(str(v), NOW - timedelta(days=1 + 7 * (n - v))) for v in range(1, n + 1)]


# --- the policy, pure -------------------------------------------------------------------------
def test_keeps_the_last_n_and_the_young_and_removes_the_rest_oldest_first() -> None:
    plan = plan_prune(RetentionPolicy(keep_last=2, keep_days=20), _weekly(6), {}, NOW)
    assert plan.remove == ("1", "2", "3")  # v4 is 15 days old: young
    assert plan.kept == {
        "4": (Protection.YOUNG,),
        "5": (Protection.LAST_N, Protection.YOUNG),
        "6": (Protection.LAST_N, Protection.YOUNG),
    }


@pytest.mark.parametrize(
    "role",
    [
        Protection.PRODUCTION,
        Protection.PREVIOUS_PRODUCTION,
        Protection.STAGING,
        Protection.ARCHIVED,
        Protection.INTENT,
    ],
)
def test_each_registry_role_keeps_a_version_the_policy_would_remove(role: Protection) -> None:
    plan = plan_prune(RetentionPolicy(0, 0), _weekly(4), {"2": {role}}, NOW)
    assert plan.remove == ("1", "3", "4")
    assert plan.kept == {"2": (role,)}
    assert f"keep v2: {role.value}" in plan.lines()


def test_a_zero_policy_removes_everything_unprotected() -> None:
    assert plan_prune(RetentionPolicy(0, 0), _weekly(3), {}, NOW).remove == ("1", "2", "3")


@pytest.mark.parametrize(
    ("keep_last", "keep_days", "words"),
    [(-1, 0, "keep_last=-1"), (1, 40_000, "keep_days=40000"), (True, 1, "not a whole number")],
)
def test_a_bad_policy_is_refused(keep_last: object, keep_days: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RetentionPolicy(keep_last, keep_days)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_prune(RetentionPolicy(1, 1), _weekly(2), {}, NOW.replace(tzinfo=None))


def test_the_policy_comes_from_the_deployments_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(config.RETENTION_KEEP_LAST_ENV, raising=False)
    monkeypatch.delenv(config.RETENTION_KEEP_DAYS_ENV, raising=False)
    assert retention_policy() == RetentionPolicy(
        config.RETENTION_KEEP_LAST, config.RETENTION_KEEP_DAYS
    )
    monkeypatch.setenv(config.RETENTION_KEEP_LAST_ENV, "3")
    monkeypatch.setenv(config.RETENTION_KEEP_DAYS_ENV, "14")
    assert retention_policy() == RetentionPolicy(3, 14)
    monkeypatch.setenv(config.RETENTION_KEEP_DAYS_ENV, "two weeks")
    with pytest.raises(ValueError, match=f"{config.RETENTION_KEEP_DAYS_ENV}='two weeks'"):
        retention_policy()


# --- against a real store ---------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path) -> tuple[Store, Path]:
    """v1..v3 promoted in turn (v3 production, v2 its previous), v4..v6 retrained after, v6
    staging; the archive keeps one version besides production and the previous, so v1 is
    unprotected; every version has its runs, study and report."""
    store = make_store(tmp_path / "mlflow")
    models = tmp_path / "models"
    registry = prune_registry(store.uri, models, retention=1)
    for seed in range(1, 7):
        retrain(store, registry, f"1.{seed}.0", seed)
        if seed <= 3:
            promote(registry, str(seed), actor="test", reason="setup", run_id="setup")
            # a drift report of each version while it served
            (store.root / "reports" / f"drift_v{seed}_2026-0{seed}-01.html").write_text("drift")
    return store, models


def _studies(store: Store) -> list[str]:
    return sorted(optuna.get_all_study_names(f"sqlite:///{store.root / 'studies.db'}"))


def _state(store: Store, models: Path) -> dict[str, Any]:
    client = store.client
    return {
        "versions": sorted(
            str(mv.version) for mv in client.search_model_versions(f"name = '{config.MODEL_NAME}'")
        ),
        "runs": sorted(r.info.run_id for r in client.search_runs([store.experiment_id])),
        "studies": _studies(store),
        "reports": snapshot(store.root / "reports"),
        "artifacts": snapshot(store.root / "artifacts"),
        "models": snapshot(models),
    }


def test_roles_read_from_the_registry(world: tuple[Store, Path]) -> None:
    store, models = world
    registry = prune_registry(store.uri, models, retention=1)
    assert _roles(store.client, registry) == {
        "2": {Protection.PREVIOUS_PRODUCTION, Protection.ARCHIVED},
        "3": {Protection.PRODUCTION, Protection.ARCHIVED},
        "6": {Protection.STAGING},
    }
    intent = Intent("promote", config.MODEL_NAME, {"from_version": "3", "to_version": "4"})
    write_intent(store.client, intent)
    assert Protection.INTENT in _roles(store.client, registry)["4"]


def test_a_dry_run_plans_and_changes_nothing(world: tuple[Store, Path]) -> None:
    store, models = world
    before = _state(store, models)
    report = prune(
        prune_registry(store.uri, models, retention=1), RetentionPolicy(1, 0), dry_run=True
    )
    assert report.plan.remove == ("1", "4", "5")
    assert report.removal.versions == ["1", "4", "5"]
    assert len(report.removal.runs) == 9  # each version's run and its two trial runs
    assert report.removal.reports == [
        *("backtest_v1.html", "drift_v1_2026-01-01.html", "optuna_d1.html"),
        *("backtest_v4.html", "optuna_d4.html", "backtest_v5.html", "optuna_d5.html"),
    ]
    assert any(line.startswith("would remove: 3 version(s)") for line in report.lines())
    assert _state(store, models) == before


def test_a_prune_removes_exactly_the_plan(world: tuple[Store, Path]) -> None:
    store, models = world
    registry = prune_registry(store.uri, models, retention=1)
    planned = prune(registry, RetentionPolicy(1, 0), dry_run=True).removal
    before = _state(store, models)
    report = prune(registry, RetentionPolicy(1, 0))
    assert report.removal == planned
    after = _state(store, models)
    assert after["versions"] == ["2", "3", "6"]
    assert set(after["runs"]) == set(before["runs"]) - set(planned.runs)
    assert after["studies"] == [f"{config.MODEL_NAME}:study{s}" for s in (2, 3, 6)]
    assert sorted(after["reports"]) == sorted(
        [f"backtest_v{v}.html" for v in (2, 3, 6)]
        + [f"optuna_d{v}.html" for v in (2, 3, 6)]
        + ["drift_v2_2026-02-01.html", "drift_v3_2026-03-01.html"]
    )
    assert after["models"] == before["models"]  # the export is untouched
    gone = [name for name in before["artifacts"] if name not in after["artifacts"]]
    assert gone and all(
        any(part in name for part in planned.runs + planned.logged_models) for name in gone
    )
    for run_id in planned.runs:  # gone for good, as `mlflow gc` would leave them
        assert not list(
            store.client.search_runs(
                [store.experiment_id], f"attributes.run_id = '{run_id}'", run_view_type=ViewType.ALL
            )
        )
    assert check_consistency(registry, run_alive=lambda _run: True) == []
    assert prune(registry, RetentionPolicy(1, 0)).removal.versions == []  # nothing left to do


# --- through Dagster: prune_job, the CLI and make prune -----------------------------------------
def test_the_cli_prunes_the_home_by_the_deployments_policy(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make prune DRY_RUN=1` lists and changes nothing; `make prune` removes by the policy the
    environment sets; a run config that tries to loosen the policy is refused at launch."""
    import dagster as dg

    from mlplatform.cli import _instance, execute, main
    from mlplatform.definitions import build_definitions

    _instance()  # the home's stores, as every command makes them
    store = make_store(config.mlflow_dir())
    registry = Registry(
        store.uri,
        config.models_dir(),
        optuna_storage=config.optuna_storage_url(),
        reports_dir=config.reports_dir(),
    )
    for seed in (1, 2, 3):
        retrain(store, registry, f"1.{seed}.0", seed)
    monkeypatch.setenv(config.RETENTION_KEEP_LAST_ENV, "1")
    monkeypatch.setenv(config.RETENTION_KEEP_DAYS_ENV, "0")
    before = _state(store, config.models_dir())

    assert main(["prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing removed" in out and "remove v1" in out and "remove v2" in out
    assert "keep v3: staging" in out
    assert _state(store, config.models_dir()) == before

    with pytest.raises(dg.DagsterInvalidConfigError, match="unexpected config entr"):
        execute(
            build_definitions(),
            _instance(),
            trigger="test",
            job="prune_job",
            run_config={"resources": {"retention": {"config": {"keep_last": 100}}}},
        )

    assert main(["prune"]) == 0
    assert "removed: 2 version(s)" in capsys.readouterr().out
    assert _state(store, config.models_dir())["versions"] == ["3"]
    assert sorted(p.name for p in config.reports_dir().iterdir()) == [
        "backtest_v3.html",
        "optuna_d3.html",
    ]
