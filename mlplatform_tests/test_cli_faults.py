"""The platform's commands as `make` runs them, when things go wrong: a command killed half way,
two retrains started together, a home folder whose disk is full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from mlplatform import config
from mlplatform.data import generate_market
from mlplatform.registry import get_alias_version, read_intent

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Criteria a small market passes (the gate's power is measured in benchmarks/bench_gate.py).
LENIENT = {"max_p_value": 1.0, "min_sharpe": -1e9, "min_dsr": 0.0, "min_class_share": 0.0,
           "min_accuracy_delta": -1.0, "max_log_loss_increase": 1.0}  # fmt: skip


@pytest.fixture
def home(platform_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home on a small market from a file, under a lenient deployment policy."""
    data_file = platform_home.parent / "prices.csv"
    generate_market(seed=3, n_tickers=6, years=5, as_of="2026-06-30").prices.to_csv(
        data_file, index=False
    )
    monkeypatch.setenv(config.DATA_PATH_ENV, str(data_file))
    monkeypatch.setenv(config.PROMOTION_POLICY_ENV, json.dumps(LENIENT))
    yield platform_home


def _command(*argv: str, fault: dict | None = None) -> subprocess.Popen:
    spec = {"cli": list(argv), **(fault or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "mlplatform_tests.fault_child", json.dumps(spec)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DAGSTER_HOME": ""},
    )


def _finish(child: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out, err


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(config.dagster_home()))


def test_the_next_command_converges_after_a_retrain_killed_mid_registration(home: Path) -> None:
    """Killed between creating the version and moving staging: the next `promote` fails the
    dead run, ends its MLflow run, undoes the registration, says so in one line, and promotes
    the staging version that was already validated."""
    code, out, err = _finish(_command("run", "--trials", "2"))
    assert code == 0, err[-3000:]
    kill = {"target": "MlflowClient.create_model_version", "when": "after", "nth": 1,
            "action": "kill"}  # fmt: skip
    code, _, err = _finish(_command("run", "--trials", "2", fault=kill))
    assert code == -9, err[-3000:]
    uri = config.mlflow_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    assert read_intent(client, config.MODEL_NAME) is not None
    instance = _instance()
    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert len(started) == 1

    code, out, err = _finish(_command("promote", "--reason", "validated v1"))
    assert code == 0, err[-3000:]
    assert "production is now v1" in out
    log = out + err
    assert "unfinished registration of" in log and "undone" in log
    assert "1 Dagster run(s) of dead processes marked failed" in log
    assert instance.get_run_by_id(started[0].run_id).status == dg.DagsterRunStatus.FAILURE
    assert read_intent(client, config.MODEL_NAME) is None
    versions = {str(mv.version) for mv in client.search_model_versions()}
    assert versions == {"1"}  # the orphan is gone
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    assert running == []
    assert str(get_alias_version(uri, config.MODEL_NAME, "staging").version) == "1"


def test_two_retrains_started_together_take_turns(home: Path) -> None:
    """Each retrain evaluates the version it registered: the second waits for the first."""
    first, second = _command("run", "--trials", "2"), _command("run", "--trials", "2")
    results = [_finish(first), _finish(second)]
    for code, _, err in results:
        assert code == 0, err[-3000:]
    assert any("waiting for" in out for _, out, _ in results)
    instance = _instance()
    runs = sorted(
        instance.get_runs(filters=dg.RunsFilter(tags={"mlplatform/pipeline": "retrain"})),
        key=lambda run: instance.get_run_record_by_id(run.run_id).start_time,
    )
    assert len(runs) == 2
    records = [instance.get_run_record_by_id(run.run_id) for run in runs]
    assert records[0].end_time <= records[1].start_time  # one after the other
    for run in runs:  # each run's evaluation is of the version that run registered
        events = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        meta = {
            e.event_log_entry.dagster_event.asset_key.to_user_string(): (
                e.event_log_entry.dagster_event.event_specific_data.materialization.metadata
            )
            for e in events
        }
        registered = str(meta["staging_model"]["registry_version"].value)
        assert meta["backtest_report"]["staging_version"].value == registered


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("cannot mount a small filesystem here (needs root with CAP_SYS_ADMIN)")


def test_a_full_home_disk_is_one_line_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "full"
    _mount_tmpfs(home, "64k")
    try:
        monkeypatch.setenv(config.HOME_ENV, str(home))
        monkeypatch.setenv(config.MODELS_DIR_ENV, str(tmp_path / "models"))
        code, out, err = _finish(_command("repair"), timeout=300)
    finally:
        subprocess.run(["umount", str(home)], check=True)
    assert code == 2, out + err
    (line,) = [line for line in err.splitlines() if line.startswith("mlplatform repair:")]
    assert f"cannot write the home folder {home}: the disk is full" in line
    assert "Traceback" not in err
