"""Kubernetes on paper (deploy/Dockerfile, deploy/helm/): the files parse, the image serves the code
location the project names, every store URL and password reaches the pods through a Secret, the
run queue keeps its limit, every pod shares one volume, and LightGBM's threads follow the
container's CPU quota (a faked cgroup) without changing the model. No docker or cluster needed."""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from joblib.externals.loky.backend import context as loky_context
from packaging.specifiers import SpecifierSet

from mlplatform import cli, config, parallel
from mlplatform.training import model, tuning
from mlplatform.training.model import train_model, with_threads
from mlplatform.training.search_space import DEFAULT_PARAMS

DEPLOY = config.PROJECT_ROOT / "deploy"
HELM = DEPLOY / "helm"
PYPROJECT = tomllib.loads((config.PROJECT_ROOT / "pyproject.toml").read_text())

# What the platform reads from the environment: every *_ENV name of mlplatform.config.
PLATFORM_ENV = {
    value
    for name, value in vars(config).items()
    if name.endswith("_ENV") and isinstance(value, str)
}
# Store URLs (with their passwords) every pod of a cluster needs: without them each pod would
# keep its own SQLite stores and file lock.
REQUIRED_SECRETS = {
    config.MLFLOW_TRACKING_URI_ENV,
    config.OPTUNA_STORAGE_ENV,
    config.REGISTRY_LOCK_URL_ENV,
}
# Variables that carry a password, token or secret URL: never a plain value in a manifest.
SECRET_BEARING = REQUIRED_SECRETS | {
    config.SLACK_TOKEN_ENV,
    config.WEBHOOK_URL_ENV,
    config.CELERY_BROKER_ENV,
    config.CELERY_BACKEND_ENV,
}
# MLflow's own variable (`mlflow server --backend-store-uri`), which the MLflow pod's args expand.
MLFLOW_BACKEND_ENV = "MLFLOW_BACKEND_STORE_URI"
PLACEHOLDER = "change-me"


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((HELM / name).read_text()) if doc is not None]


def values() -> dict[str, Any]:
    (doc,) = documents("values.yaml")
    return doc


def code_location() -> dict[str, Any]:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


def example_secrets() -> dict[str, dict[str, str]]:
    """Each example Secret's keys and placeholder values, by the Secret's name."""
    return {doc["metadata"]["name"]: doc["stringData"] for doc in documents("secrets.example.yaml")}


def of_kind(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [doc for doc in documents(name) if doc["kind"] == kind]
    return doc


def mlflow_pod() -> dict[str, Any]:
    return of_kind("mlflow.yaml", "Deployment")["spec"]["template"]["spec"]


def mlflow_container() -> dict[str, Any]:
    (container,) = mlflow_pod()["containers"]
    return container


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) for each instruction, continued lines joined."""
    instructions: list[tuple[str, str]] = []
    parts: list[str] = []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        text = line.strip()
        if not parts and (not text or text.startswith("#")):
            continue
        parts.append(text.removesuffix("\\").strip())
        if not text.endswith("\\"):
            instruction, _, arguments = " ".join(parts).partition(" ")
            instructions.append((instruction.upper(), arguments))
            parts = []
    return instructions


def instruction(name: str) -> list[str]:
    return [arguments for found, arguments in dockerfile() if found == name]


def after(items: list[str], flag: str) -> str:
    """The argument that follows `flag` in a command line."""
    return items[items.index(flag) + 1]


def mount_of(pod: dict[str, Any], container: dict[str, Any], claim: str) -> PurePosixPath:
    """Where `container` mounts the PersistentVolumeClaim `claim` of `pod`'s volumes."""
    (volume,) = [
        v["name"] for v in pod["volumes"] if v["persistentVolumeClaim"]["claimName"] == claim
    ]
    (path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return PurePosixPath(path)


def test_every_file_parses() -> None:
    for path in sorted(HELM.glob("*.yaml")):
        docs = documents(path.name)
        assert docs and all(isinstance(doc, dict) for doc in docs), path.name
    assert instruction("FROM") and instruction("CMD")


def test_the_image_serves_the_code_location_the_project_names() -> None:
    (cmd,) = instruction("CMD")
    command = json.loads(cmd)
    workspace = yaml.safe_load((config.PROJECT_ROOT / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    grpc = code_location()["dagsterApiGrpcArgs"]
    modules = {
        after(command, "-m"),
        after(grpc, "-m"),
        location["python_module"]["module_name"],
        PYPROJECT["tool"]["dagster"]["module_name"],
        PYPROJECT["tool"]["dg"]["project"]["code_location_target_module"],
    }
    assert modules == {"mlplatform.definitions"}
    # The chart names the location after the deployment.
    names = {code_location()["name"], location["python_module"]["location_name"]}
    assert names == {PYPROJECT["tool"]["dagster"]["code_location_name"]}
    assert int(after(command, "-p")) == code_location()["port"]
    # The chart passes the whole command as args: an ENTRYPOINT would run in front of it.
    assert not instruction("ENTRYPOINT")


def test_the_image_is_the_supported_python_a_user_runs_and_holds_no_secret() -> None:
    (base,) = instruction("FROM")
    version = base.removeprefix("python:").removesuffix("-slim")
    assert base == f"python:{version}-slim"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{version}.0")
    (user,) = instruction("USER")
    assert user.split(":")[0] not in {"0", "root"}
    declared = " ".join(instruction("ENV") + instruction("ARG"))
    assert not [name for name in PLATFORM_ENV if name in declared]
    # dagster-k8s (the chart's run launcher, loaded by every run pod) from the same release as
    # the other dagster libraries.
    assert any('pip install ".[k8s]"' in run for run in instruction("RUN"))
    (k8s,) = PYPROJECT["project"]["optional-dependencies"]["k8s"]
    postgres = next(
        d for d in PYPROJECT["project"]["dependencies"] if d.startswith("dagster-postgres==")
    )
    assert k8s.split("==")[1] == postgres.split("==")[1]


def test_every_variable_the_manifests_set_is_one_the_platform_reads() -> None:
    env_secrets = [ref["name"] for ref in code_location()["envSecrets"]]
    from_secrets = {key for name in env_secrets for key in example_secrets()[name]}
    mlflow_env = {entry["name"] for entry in mlflow_container()["env"]}
    named = set(code_location()["env"]) | from_secrets | (mlflow_env - {MLFLOW_BACKEND_ENV})
    assert named <= PLATFORM_ENV, named - PLATFORM_ENV
    # The one variable that is not the platform's is the one the MLflow pod's args expand.
    assert f"$({MLFLOW_BACKEND_ENV})" in mlflow_container()["args"]


def test_store_urls_and_passwords_reach_the_pods_only_through_secrets() -> None:
    secrets = example_secrets()
    env_secrets = [ref["name"] for ref in code_location()["envSecrets"]]
    assert {key for name in env_secrets for key in secrets[name]} >= REQUIRED_SECRETS
    plain = set(code_location()["env"]) | {
        entry["name"] for entry in mlflow_container()["env"] if "value" in entry
    }
    assert not plain & (SECRET_BEARING | {MLFLOW_BACKEND_ENV})
    for entry in mlflow_container()["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets[ref["name"]]
    # The instance's password: a Secret the operator makes, none generated from a value here.
    chart = values()
    assert chart["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in chart["postgresql"]
    assert "postgresql-password" in secrets[chart["global"]["postgresqlSecretName"]]
    # Every example password is a placeholder.
    for data in secrets.values():
        for value in data.values():
            password = urlsplit(value).password if "://" in value else value
            assert password in (None, PLACEHOLDER), value


def test_the_run_queue_keeps_one_retrain_at_a_time_and_monitors_runs() -> None:
    packaged = yaml.safe_load((config.PROJECT_ROOT / "mlplatform" / "dagster.yaml").read_text())
    team = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())
    daemon = values()["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert daemon["runCoordinator"]["enabled"] is True
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    limits = packaged["concurrency"]["runs"]["tag_concurrency_limits"]
    assert queued["tagConcurrencyLimits"] == limits
    assert team["concurrency"]["runs"]["tag_concurrency_limits"] == limits
    assert {"key": "mlplatform/pipeline", "value": "retrain", "limit": 1} in limits
    monitoring, packaged_monitoring = daemon["runMonitoring"], packaged["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["startTimeoutSeconds"] == packaged_monitoring["start_timeout_seconds"]
    assert monitoring["pollIntervalSeconds"] == packaged_monitoring["poll_interval_seconds"]
    assert values()["runLauncher"]["type"] == "K8sRunLauncher"


def test_every_pod_shares_one_read_write_many_volume() -> None:
    claim = of_kind("storage.yaml", "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    name = claim["metadata"]["name"]
    location = code_location()
    # Run pods get the code location's volumes and env (includeConfigInLaunchedRuns).
    assert location["includeConfigInLaunchedRuns"]["enabled"] is True
    shared = mount_of(location, location, name)
    for variable in (config.HOME_ENV, config.IO_DIR_ENV, config.MODELS_DIR_ENV):
        assert PurePosixPath(location["env"][variable]).is_relative_to(shared), variable
    webserver = values()["dagsterWebserver"]
    logs = values()["computeLogManager"]["config"]["customComputeLogManager"]["config"]
    assert mount_of(webserver, webserver, name) == shared
    assert PurePosixPath(logs["base_dir"]).is_relative_to(shared)
    artifacts = PurePosixPath(after(mlflow_container()["args"], "--artifacts-destination"))
    assert artifacts.is_relative_to(mount_of(mlflow_pod(), mlflow_container(), name))


def test_the_compute_log_managers_named_load_in_an_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both names load the way Dagster loads dagster.yaml (which maps its documented
    `dagster.core` module names to the package's own)."""
    manager = values()["computeLogManager"]
    assert manager["type"] == "CustomComputeLogManager"
    team = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())["compute_logs"]
    monkeypatch.setenv("MLPLATFORM_COMPUTE_LOGS_DIR", str(tmp_path / "team-logs"))
    for i, named in enumerate((manager["config"]["customComputeLogManager"], team)):
        home = tmp_path / f"home{i}"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({"compute_logs": named}))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.compute_log_manager).__name__ == "LocalComputeLogManager"


def test_the_mlflow_server_answers_the_name_clients_use(monkeypatch: pytest.MonkeyPatch) -> None:
    tracking = urlsplit(example_secrets()["mlplatform-env"][config.MLFLOW_TRACKING_URI_ENV])
    service = of_kind("mlflow.yaml", "Service")
    (port,) = service["spec"]["ports"]
    args = mlflow_container()["args"]
    assert tracking.hostname == service["metadata"]["name"]
    assert tracking.port == port["port"] == int(after(args, "--port"))
    env = {entry["name"]: entry for entry in mlflow_container()["env"]}
    monkeypatch.setenv(config.MLFLOW_TRACKING_URI_ENV, tracking.geturl())
    hosts = cli.allowed_hosts(env[config.MLFLOW_ALLOWED_HOSTS_ENV]["value"])
    assert f"{tracking.hostname}:*" in hosts and "mlflow.*.svc.cluster.local:*" in hosts


def test_the_mlflow_server_log_shows_no_backend_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = example_secrets()["mlflow-backend"][MLFLOW_BACKEND_ENV]
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
    assert PLACEHOLDER not in logged and "mlflow:***@postgres.example.internal" in logged
    assert backend in started[0]  # the server itself gets the real URL


# --- threads from the container's CPU quota ------------------------------------------------


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
