"""Deployment files hold what the platform needs: the team instance's step logs load, the MLflow
server's log shows no store password, and LightGBM's threads follow the container's CPU quota (a
faked cgroup: what Kubernetes sets for a pod's CPU limit) without changing the model."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster._serdes.config_class import class_from_code_pointer
from joblib.externals.loky.backend import context as loky_context

from mlplatform import cli, config, parallel
from mlplatform.training import model, tuning
from mlplatform.training.model import train_model, with_threads
from mlplatform.training.search_space import DEFAULT_PARAMS

DEPLOY = config.PROJECT_ROOT / "deploy"


def test_the_team_instances_compute_log_manager_is_importable() -> None:
    named = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())["compute_logs"]
    klass = class_from_code_pointer(named["module"], named["class"])
    assert klass.__name__ == "LocalComputeLogManager"


def test_the_mlflow_server_log_shows_no_backend_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = "postgresql+psycopg2://mlflow:s3cret@db.internal:5432/mlplatform_mlflow"
    started: list[list[str]] = []
    monkeypatch.setattr(cli, "create_database", lambda url: None)
    monkeypatch.setattr(cli.subprocess, "call", lambda command, cwd: started.append(command) or 0)
    args = argparse.Namespace(
        backend_store_uri=backend,
        artifacts_destination="/shared/mlflow/artifacts",
        host="0.0.0.0",
        port=5000,
        allowed_hosts="",
    )
    assert cli.cmd_mlflow_server(args) == 0
    logged = capsys.readouterr().out
    assert "s3cret" not in logged and "mlflow:***@db.internal" in logged
    assert backend in started[0]  # the server itself gets the real URL


@pytest.fixture
def cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """A host of 8 CPUs whose /sys/fs/cgroup is a folder this test writes: loky (joblib) reads the
    quota through os.path.exists and open, which are pointed there."""
    root = PurePosixPath("/sys/fs/cgroup")
    exists, real_open = os.path.exists, open

    def faked(path: Any) -> Any:
        pure = PurePosixPath(os.fspath(path))
        return tmp_path / pure.relative_to(root) if pure.is_relative_to(root) else path

    monkeypatch.setattr(os.path, "exists", lambda path: exists(faked(path)))
    monkeypatch.setattr(
        loky_context, "open", lambda path, *a, **k: real_open(faked(path), *a, **k), raising=False
    )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)

    def write(files: dict[str, str]) -> None:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")

    return write


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "100000 100000"}, 1),  # cgroup v2: one CPU
        ({"cpu.max": "150000 100000"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "max 100000"}, 8),  # no limit: the host's CPUs
        ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"}, 2),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 8),  # v1, no limit
        ({}, 8),  # no cgroup at all
    ],
)
def test_threads_follow_the_containers_cpu_quota(
    cgroup: Callable[[dict[str, str]], None], files: dict[str, str], cpus: int
) -> None:
    cgroup(files)
    assert parallel.cores() == cpus
    assert with_threads(DEFAULT_PARAMS)["num_threads"] == cpus
    assert tuning.threads_per_worker(1) == cpus
    assert tuning.threads_per_worker(2) == max(1, cpus // 2)


def _market(rows: int = 20_000, seed: int = 5) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.standard_normal((rows, 8)), columns=[f"f{i}" for i in range(8)])
    y = pd.Series((X["f0"] + 0.5 * X["f1"] + rng.standard_normal(rows) > 0).astype(np.int8))
    return X, y


def test_a_fit_runs_on_the_quota_whatever_count_its_recipe_carries(
    cgroup: Callable[[dict[str, str]], None],
) -> None:
    cgroup({"cpu.max": "100000 100000"})
    X, y = _market(rows=2_000)
    registered_elsewhere = DEFAULT_PARAMS | {"num_threads": 8}
    assert train_model(X, y, registered_elsewhere, 3).params["num_threads"] == 1


def test_the_thread_count_does_not_change_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _market()
    params = DEFAULT_PARAMS | {"bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.6}
    fitted = {}
    for threads in (1, 2):
        monkeypatch.setattr(model, "cores", lambda threads=threads: threads)
        booster = train_model(X, y, params, 30)
        assert booster.params["num_threads"] == threads
        fitted[threads] = (booster.dump_model()["tree_info"], booster.predict(X))
    (trees_1, scores_1), (trees_2, scores_2) = fitted[1], fitted[2]
    assert trees_1 == trees_2
    assert np.array_equal(scores_1, scores_2)
