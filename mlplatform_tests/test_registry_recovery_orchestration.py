"""The Dagster side of issue 9: the promotion gate after a failed run, `run`'s exit status when
a store fails, and repair_export_job closing what dead processes left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from mlplatform.cli import execute, run_errors
from mlplatform.orchestration.liveness import close_dead_runs, process_tags
from mlplatform.orchestration.promotion_facts import check_evidence
from mlplatform.orchestration.resources import mlflow_tracking
from mlplatform.promotion import CheckStatus, PromotionFacts, PromotionPolicy, decide_promotion
from mlplatform.registry import owner_tags


def test_gate_after_a_failed_check_run_reports_instead_of_crashing() -> None:
    """The check's latest record is only *planned* and its run died: it says nothing about any
    version (no `passed` to read), so the gate reports the check as never evaluated."""

    @dg.asset(name="backtest_report")
    def backtest_report() -> None:
        raise RuntimeError("run died")

    @dg.asset_check(asset="backtest_report", blocking=True)
    def beats_majority_class() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    defs = dg.Definitions(assets=[backtest_report], asset_checks=[beats_majority_class])
    instance = dg.DagsterInstance.ephemeral()
    result = execute(defs, instance, trigger="test", assets=[dg.AssetKey("backtest_report")])
    assert not result.success
    evidence = check_evidence(instance, "beats_majority_class")
    assert evidence.status is CheckStatus.NOT_EVALUATED
    facts = PromotionFacts("1", None, None, (evidence,), PromotionPolicy())
    decision = decide_promotion(facts, override=True, reason="reviewed")
    assert decision.allowed and decision.overridden  # an override gets past it, no crash
    refused = decide_promotion(facts, override=False, reason="")
    assert "beats_majority_class: never evaluated" in refused.message()


def test_run_fails_when_a_store_fails_before_any_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only MLflow store fails the run outside any step: that is no promotion verdict."""
    monkeypatch.chdir(tmp_path)  # MLflow makes the URI's "file:" folder relative to the cwd
    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()
    read_only = f"sqlite:///file:{tmp_path / 'mlflow.db'}?mode=ro&uri=true"

    @dg.asset(required_resource_keys={"mlflow"})
    def features() -> int:
        return 1

    resource = mlflow_tracking.configured(
        {
            "experiment_name": "x",
            "mlflow_tracking_uri": read_only,
            "artifact_location": str(tmp_path / "artifacts"),
        }
    )
    defs = dg.Definitions(assets=[features], resources={"mlflow": resource})
    result = execute(
        defs, dg.DagsterInstance.ephemeral(), trigger="test", assets=[dg.AssetKey("features")]
    )
    errors = run_errors(result)
    assert len(errors) == 1
    assert errors[0].startswith("run failed with 0 asset(s) materialized: ")
    assert "readonly database" in errors[0]


def test_runs_of_a_dead_process_are_closed(tmp_path: Path) -> None:
    """A Dagster run STARTED and an MLflow run RUNNING by a process that then died."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = child.stdout.strip()  # reaped: this pid is gone
    instance = dg.DagsterInstance.ephemeral()

    @dg.job
    def noop() -> None:
        pass

    dead_tags = {**process_tags(), "mlplatform/pid": dead_pid}
    run = instance.create_run_for_job(noop, tags=dead_tags, status=dg.DagsterRunStatus.STARTED)
    alive = client.create_run(experiment, tags=owner_tags())  # this process: alive
    dead = client.create_run(
        experiment, tags={**owner_tags(), "mlplatform.pid": dead_pid, "dagster_run_id": run.run_id}
    )
    closed = close_dead_runs(instance, uri)
    assert closed["dagster_runs_failed"] == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert closed["mlflow_runs_killed"] == [dead.info.run_id]
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"


def test_a_new_home_gets_the_committed_instance_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform import config
    from mlplatform.cli import prepare_home

    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", "")  # unset for the CLI, restored after the test
    prepare_home()
    instance = dg.DagsterInstance.from_config(str(config.dagster_home()))
    assert instance.run_monitoring_enabled
    # the run queue lets one retrain run at a time
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "mlplatform/pipeline", "value": "retrain", "limit": 1} in limits
    edited = config.dagster_home() / "dagster.yaml"
    edited.write_text("telemetry:\n  enabled: false\n")
    prepare_home()  # a person's edits are kept
    assert edited.read_text() == "telemetry:\n  enabled: false\n"
