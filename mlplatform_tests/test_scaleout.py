"""The scale-out stack on real servers: Postgres (Dagster instance, MLflow backend, Optuna, the
registry lock), Redis (Optuna journal, Celery broker) and an MLflow server these tests start.

Without the servers (a laptop) the tests skip, naming what is missing; under CI=true they fail
instead. Start the servers: see docs/scaling-out.md.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import optuna
import pytest
import redis
import sqlalchemy as sa
from dagster_celery.make_app import make_app
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from mlplatform import config
from mlplatform.cli import create_database, execute, main
from mlplatform.definitions import build_definitions, build_resources
from mlplatform.orchestration.executors import CELERY_YAML
from mlplatform.orchestration.resources import (
    MarketDataSource,
    ValidationScheme,
    ensure_experiment,
)
from mlplatform.registry import (
    ModelPackage,
    Registry,
    RegistryError,
    load_booster,
    promote,
    register,
)
from mlplatform.training import SEARCH_SPACE, walk_forward_folds
from mlplatform.training.tuning import LAUNCHES_ATTR, StudySpec, make_storage, run_study
from mlplatform_tests.conftest import (
    RETRAIN_ASSETS,
    SMALL_MARKET,
    SMALL_VALIDATION,
    failure_message,
    lenient_policy,
    small_run_config,
)
from mlplatform_tests.registry_support import tiny_booster, tiny_frame
from mlplatform_tests.test_training_tuning import FAST, small_frame

pytestmark = pytest.mark.scaleout

PG_SERVER = os.environ.get("MLPLATFORM_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("MLPLATFORM_TEST_REDIS", "redis://127.0.0.1:6379/10")
AMQP_URL = os.environ.get("MLPLATFORM_TEST_AMQP", "amqp://guest@127.0.0.1:5672//")
DB_PREFIX = "issue10_"  # every database these tests create (and drop) starts with this
DAGSTER_YAML = config.PROJECT_ROOT / "deploy" / "dagster-postgres.yaml"


def _require(service: str, url: str) -> None:
    """Skip (fail under CI=true) when `url`'s host:port does not accept a connection."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"{service} unreachable at {host}:{port} ({exc}); see docs/scaling-out.md"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)


def _new_database() -> str:
    url = f"{PG_SERVER}/{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    create_database(url)
    return url


def _drop_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    engine = sa.create_engine(f"{PG_SERVER}/postgres", poolclass=sa.pool.NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def databases() -> Iterator[Callable[[], str]]:
    """Makes fresh databases on the machine's Postgres, dropped afterwards. Dagster, MLflow and
    Optuna each keep an alembic_version table: each store needs a database of its own."""
    _require("PostgreSQL", PG_SERVER)
    made: list[str] = []

    def new() -> str:
        made.append(_new_database())
        return made[-1]

    yield new
    for url in made:
        _drop_database(url)


@pytest.fixture
def postgres(databases: Callable[[], str]) -> str:
    return databases()


@pytest.fixture
def redis_db() -> Iterator[str]:
    _require("Redis", REDIS_URL)
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()


def _free_port() -> int:
    for port in range(5100, 5200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 5100-5199")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`python -m mlplatform mlflow-server` (what `make mlflow-server` runs) on a fresh
    database, artifacts proxied from a folder only the server knows: (URL, artifact folder)."""
    _require("PostgreSQL", PG_SERVER)
    backend = _new_database()
    artifacts = tmp_path_factory.mktemp("server-artifacts")
    port = _free_port()
    log = (tmp_path_factory.mktemp("server-log") / "mlflow.log").open("w")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlplatform", "mlflow-server"),
            *("--backend-store-uri", backend, "--artifacts-destination", str(artifacts)),
            *("--port", str(port), "--allowed-hosts", "mlflow.internal"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # mlflow starts uvicorn: stop the whole group afterwards
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # about 10 s idle; over a minute on a busy 2-core box
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: see {log.name}")
            time.sleep(0.5)
        yield url, artifacts
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
        _drop_database(backend)


def test_server_answers_a_dns_name_it_was_told(mlflow_server: tuple[str, Path]) -> None:
    """MLflow 3 refuses a Host header outside its allowed hosts (DNS rebinding protection)."""
    server_url, _ = mlflow_server

    def status(host: str) -> int:
        request = urllib.request.Request(
            f"{server_url}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("mlflow.internal") == 200
    assert status("elsewhere.example") == 403


def _postgres_instance(home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):
    """A Dagster instance from deploy/dagster-postgres.yaml, credentials from the environment."""
    url = sa.engine.make_url(database_url)
    for name, value in {
        "MLPLATFORM_PG_USER": url.username,
        "MLPLATFORM_PG_PASSWORD": url.password or "",
        "MLPLATFORM_PG_HOST": url.host,
        "MLPLATFORM_PG_DB": url.database,
        "MLPLATFORM_COMPUTE_LOGS_DIR": home / "compute-logs",
    }.items():
        monkeypatch.setenv(name, str(value))
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


# --- stores ---------------------------------------------------------------------------------------


def test_retrain_promote_rollback_with_every_store_on_the_servers(
    platform_home: Path,
    mlflow_server: tuple[str, Path],
    databases: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_url, server_artifacts = mlflow_server
    model = config.MODEL_NAME  # the module's server is fresh; the race test uses its own name
    optuna_db, dagster_db = databases(), databases()
    monkeypatch.setenv(config.MLFLOW_TRACKING_URI_ENV, server_url)
    monkeypatch.setenv(config.OPTUNA_STORAGE_ENV, optuna_db)
    monkeypatch.setenv(config.REGISTRY_LOCK_URL_ENV, optuna_db)
    instance = _postgres_instance(platform_home / "dagster", dagster_db, monkeypatch)
    defs = build_definitions(
        {
            "market_data": MarketDataSource(**SMALL_MARKET),
            "validation": ValidationScheme(**SMALL_VALIDATION),
            "policy": lenient_policy(),
        }
    )

    trained = execute(
        defs,
        instance,
        trigger="test",
        assets=[dg.AssetKey(k) for k in RETRAIN_ASSETS],
        run_config=small_run_config(n_trials=2),
    )
    assert trained.success, failure_message(trained)

    def promote_staging(reason: str) -> None:
        result = execute(
            defs,
            instance,
            trigger="test",
            assets=[dg.AssetKey("production_model")],
            run_config={"ops": {"production_model": {"config": {"reason": reason}}}},
        )
        assert result.success, failure_message(result)

    promote_staging("first")
    retrained = execute(
        defs,
        instance,
        trigger="test",
        assets=[dg.AssetKey("staging_model"), dg.AssetKey("backtest_report")],
        run_config={"ops": {"staging_model": {"config": {"seed": 11}}}},
    )
    assert retrained.success, failure_message(retrained)
    promote_staging("second")
    rolled_back = execute(
        defs,
        instance,
        trigger="test",
        job="rollback_job",
        run_config={"ops": {"rollback_production": {"config": {"reason": "test"}}}},
    )
    assert rolled_back.success, failure_message(rolled_back)

    client = MlflowClient(tracking_uri=server_url)
    production = client.get_model_version_by_alias(model, config.PRODUCTION_ALIAS)
    assert str(production.version) == "1"
    assert production.source.startswith(("models:/", "mlflow-artifacts:"))
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    assert experiment is not None and experiment.artifact_location.startswith("mlflow-artifacts:")
    # Artifacts went to the server's folder, never to this client's home folder...
    assert not config.mlflow_artifact_root().exists()
    assert len(list(server_artifacts.rglob("MLmodel"))) >= 2
    # ...and a client without any local artifact folder reads the model through the server.
    booster = load_booster(server_url, model, "2")
    assert booster.num_trees() > 0
    # The Dagster instance and the Optuna study live in Postgres.
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert len(instance.get_runs()) == 5
    summaries = optuna.get_all_study_summaries(make_storage(optuna_db))
    assert len(summaries) == 1 and summaries[0].n_trials == 2


def test_store_urls_with_credentials_reach_resources_as_envvar_names(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the UI shows of a resource is its config: the variable's name, never the URL."""
    secret_url = "postgresql+psycopg2://mlplatform:s3cret@db:5432/optuna"
    monkeypatch.setenv(config.MLFLOW_TRACKING_URI_ENV, "https://ops:s3cret@mlflow.internal")
    monkeypatch.setenv(config.OPTUNA_STORAGE_ENV, secret_url)
    monkeypatch.setenv(config.REGISTRY_LOCK_URL_ENV, secret_url)
    monkeypatch.setenv(config.IO_DIR_ENV, str(platform_home / "shared-io"))
    resources = build_resources()
    stores = resources["stores"]
    for value, name in (
        (stores.tracking_uri, config.MLFLOW_TRACKING_URI_ENV),
        (stores.optuna_storage, config.OPTUNA_STORAGE_ENV),
        (stores.registry_lock_url, config.REGISTRY_LOCK_URL_ENV),
    ):
        assert isinstance(value, dg.EnvVar) and value == name
    assert "s3cret" not in repr(resources)
    # Unset, the embedded stores are plain paths under the home folder, as before.
    for name in (config.MLFLOW_TRACKING_URI_ENV, config.OPTUNA_STORAGE_ENV):
        monkeypatch.delenv(name)
    monkeypatch.delenv(config.REGISTRY_LOCK_URL_ENV)
    embedded = build_resources()["stores"]
    assert (
        embedded.tracking_uri == config.mlflow_tracking_uri() and "sqlite" in embedded.tracking_uri
    )
    assert embedded.registry_lock_url is None


def _promote_in_process(
    tracking_uri: str, lock_url: str, model: str, version: str, export: str, barrier
) -> None:
    """One host's promotion, started together with the other's (spawned process)."""
    barrier.wait()
    registry = Registry(tracking_uri, Path(export), name=model, lock_url=lock_url)
    promote(registry, version, actor=f"host-{version}", reason="race", run_id=f"run-{version}")


def test_two_concurrent_promotions_leave_one_consistent_production(
    tmp_path: Path, mlflow_server: tuple[str, Path], postgres: str
) -> None:
    server_url, _ = mlflow_server
    model = f"race-{uuid.uuid4().hex[:8]}"
    experiment = ensure_experiment(server_url, config.EXPERIMENT_NAME, tmp_path / "unused")
    client = MlflowClient(tracking_uri=server_url)
    for seed in (1, 2):
        X, _ = tiny_frame(seed)
        package = ModelPackage(
            tiny_booster(seed),
            semver=f"1.0.{seed}",
            tags={"data_fingerprint": f"fp{seed}", "dagster_run_id": f"d{seed}"},
            input_example=X,
            reference={"seed": seed},
            metadata={"seed": seed},
        )
        register(
            Registry(server_url, tmp_path / "registering-host", name=model, lock_url=postgres),
            package,
            run_id=client.create_run(experiment).info.run_id,
        )
    # Without a lock every host takes, a registry write to the shared server is refused.
    with pytest.raises(RegistryError, match=config.REGISTRY_LOCK_URL_ENV):
        promote(
            Registry(server_url, tmp_path / "host-without-lock", name=model),
            "1", actor="host", reason="no lock", run_id="r",
        )  # fmt: skip
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    hosts = [
        context.Process(
            target=_promote_in_process,
            args=(server_url, postgres, model, v, str(tmp_path / f"host-{v}"), barrier),
        )
        for v in ("1", "2")
    ]
    for process in hosts:
        process.start()
    for process in hosts:
        process.join(timeout=120)
        assert process.exitcode == 0

    production = client.get_model_version_by_alias(model, config.PRODUCTION_ALIAS)
    other = "1" if production.version == "2" else "2"
    # Serialised: whoever went second saw the first as production and archived it.
    assert production.tags["previous_production_version"] == other
    assert client.get_model_version(model, other).tags.get(config.ARCHIVED_TAG) == "true"
    assert production.tags.get(config.ARCHIVED_TAG) is None


# --- distributed tuning ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuning_data():
    X, y = small_frame(n_dates=220, n_tickers=6)
    dates = X.index.get_level_values("date").unique()
    folds = walk_forward_folds(dates, n_folds=2, horizon=1, embargo_days=2, min_train_days=100)
    return X, y, folds


def _tune(data, url: str, n_trials: int, workers: int, name: str = "shared", heartbeat_s: int = 60):
    X, y, folds = data
    spec = StudySpec(
        name,
        url,
        n_trials=n_trials,
        timeout_s=300.0,
        seed=7,
        workers=workers,
        heartbeat_interval_s=heartbeat_s,
        stagnation_trials=None,  # every trial runs: the counts below are exact
        **FAST,
    )
    return run_study(X, y, folds, spec)


def _assert_distinct_trials(url: str, expected: int, workers: set[str]) -> None:
    study = optuna.load_study(study_name="shared", storage=make_storage(url))
    trials = [t for t in study.trials if t.state != TrialState.FAIL]
    draws = [tuple(sorted(t.params.items())) for t in trials]
    assert len(trials) == expected and len(set(draws)) == expected  # no duplicated parameters
    assert {t.user_attrs["worker"] for t in trials} == workers
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert study.best_trial.number == best.number


def test_two_tuning_workers_on_postgres_run_no_duplicate_trial(tuning_data, postgres: str) -> None:
    first = _tune(tuning_data, postgres, n_trials=4, workers=2)
    assert first.n_complete + first.n_pruned == 4
    second = _tune(tuning_data, postgres, n_trials=4, workers=2)  # a resume, two workers again
    assert second.n_trials_in_study == 8
    assert second.best_value <= first.best_value
    _assert_distinct_trials(postgres, 8, {"0.0", "0.1", "1.0", "1.1"})


def test_journal_storages_on_a_file_and_on_redis(
    tuning_data, tmp_path: Path, redis_db: str
) -> None:
    journal = f"journal+file://{tmp_path / 'journal' / 'studies.log'}"
    result = _tune(tuning_data, journal, n_trials=4, workers=2)
    assert result.n_trials_in_study == 4
    _assert_distinct_trials(journal, 4, {"0.0", "0.1"})

    on_redis = "journal+" + redis_db
    _tune(tuning_data, on_redis, n_trials=2, workers=1)
    _tune(tuning_data, on_redis, n_trials=2, workers=1)  # a resume replays no draw
    _assert_distinct_trials(on_redis, 4, {"0.0", "1.0"})


def test_a_dead_workers_trial_is_failed_by_its_heartbeat_and_retried(
    tuning_data, tmp_path: Path
) -> None:
    """A worker that died mid-trial leaves it RUNNING with a stale heartbeat: the next worker on
    the study marks it FAIL and runs its parameters again."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = make_storage(url, heartbeat_interval_s=1)
    study = optuna.create_study(study_name="shared", storage=storage)
    dead = study.ask({"num_leaves": SEARCH_SPACE["num_leaves"]})
    dead_params = dict(dead.params)
    study._storage.record_heartbeat(dead._trial_id)  # then the "worker" vanishes
    # Past the grace period (3 heartbeat intervals) with room for SQLite's CURRENT_TIMESTAMP,
    # which Optuna compares the heartbeat against and which has whole-second resolution.
    time.sleep(5.0)

    _tune(tuning_data, url, n_trials=1, workers=1, heartbeat_s=1)
    trials = optuna.load_study(study_name="shared", storage=make_storage(url)).trials
    assert trials[0].state == TrialState.FAIL
    retried = trials[1]
    assert retried.system_attrs["failed_trial"] == trials[0].number
    assert retried.params["num_leaves"] == dead_params["num_leaves"]


def _kill_mid_trial(url: str, tag: str, tuning: Future) -> int:
    """SIGKILL the worker process `tag` while it runs a trial; that trial's number. The worker
    is paused (SIGSTOP) while the storage is read, so its trial cannot end between the look and
    the kill."""
    storage = None
    while not tuning.done():
        worker = next(
            (p for p in multiprocessing.active_children() if p.name == f"optuna-worker-{tag}"), None
        )
        if worker is not None:  # then the study exists
            storage = storage or make_storage(url)
            os.kill(worker.pid, signal.SIGSTOP)
            study_id = storage.get_study_id_from_name("shared")
            running = storage.get_all_trials(study_id, states=(TrialState.RUNNING,))
            mine = [t for t in running if t.user_attrs.get("worker") == tag]
            if mine:
                os.kill(worker.pid, signal.SIGKILL)
                return mine[0].number
            os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(f"worker {tag} never ran a trial while we looked")


@pytest.mark.parametrize("store", ["postgres", "redis_db"])
def test_a_killed_worker_fails_its_trial_at_once_and_a_replacement_finishes_the_study(
    tuning_data, store: str, request: pytest.FixtureRequest
) -> None:
    """Issue 28 item 1: the survivor goes on, the dead worker's trial is failed (heartbeats are
    60 s apart, so not by a heartbeat) and run again, and the run still tunes 8 trials."""
    url = request.getfixturevalue(store)
    url = "journal+" + url if store == "redis_db" else url
    with ThreadPoolExecutor(1) as pool:
        tuning = pool.submit(_tune, tuning_data, url, n_trials=8, workers=2)
        killed = _kill_mid_trial(url, "0.1", tuning)
        result = tuning.result()
    trials = optuna.load_study(study_name="shared", storage=make_storage(url)).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len(finished) == 8 == result.n_complete + result.n_pruned == result.n_trials_tried
    assert trials[killed].state == TrialState.FAIL and trials[killed].user_attrs["worker"] == "0.1"
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed]
    assert (result.n_lost, result.n_retried, result.workers_replaced) == (1, 1, 1)
    assert result.n_failed == 0 and result.stop_reason == "trial_limit"
    (retried,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert retried.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retried.params.items() >= trials[killed].params.items()  # its parameters, run again
    by_worker = Counter(t.user_attrs["worker"] for t in finished)
    assert by_worker["0.0"] == 4  # the survivor ran its whole share
    assert by_worker["0.1"] + by_worker["0.2"] == 4  # the replacement ran what 0.1 had left
    assert by_worker["0.2"] >= 1


def _tune_at_barrier(data, url: str, barrier) -> None:
    """One host's launch on a new database, started together with the other's (spawned)."""
    barrier.wait()
    _tune(data, url, n_trials=1, workers=1)


def test_two_hosts_starting_together_on_a_new_database_both_open_the_study(
    tuning_data, postgres: str
) -> None:
    """Issue 28 item 2: Optuna's schema creation and the launch counter under concurrent first
    starts (before the launch lock one host crashed with UniqueViolation, every time)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    hosts = [
        context.Process(target=_tune_at_barrier, args=(tuning_data, postgres, barrier))
        for _ in range(2)
    ]
    for process in hosts:
        process.start()
    for process in hosts:
        process.join(timeout=300)
        assert process.exitcode == 0
    study = optuna.load_study(study_name="shared", storage=make_storage(postgres))
    assert study.user_attrs[LAUNCHES_ATTR] == 2
    assert sorted(t.user_attrs["worker"] for t in study.trials) == ["0.0", "1.0"]  # two seeds
    assert [t.user_attrs.get("first_trial") for t in study.trials].count("prior") == 1


def test_bad_storage_urls_and_worker_counts_are_refused(tuning_data) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        make_storage("journal+file://relative/studies.log")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        _tune(tuning_data, "sqlite:///:memory:", n_trials=1, workers=0)
    with pytest.raises(ValueError, match="need a storage they share"):
        _tune(tuning_data, "sqlite:///:memory:", n_trials=2, workers=2)


# --- a real executor ---------------------------------------------------------------------------


def _celery_worker(name: str, log: Path) -> subprocess.Popen:
    """What `make celery-worker` runs: the committed settings, the venv's bin first on PATH."""
    bin_dir = Path(sys.executable).parent
    return subprocess.Popen(
        [
            *(str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"),
            *("-y", str(CELERY_YAML), "-n", name, "--", "--concurrency", "1", "--pool", "solo"),
        ],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=config.PROJECT_ROOT,
    )


def _wait_for(condition: Callable[[], bool], what: str, log: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}:\n" + log.read_text()[-3000:]
        time.sleep(0.5)


def test_a_killed_celery_worker_s_step_is_finished_by_the_next_worker(
    platform_home: Path, databases: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the only worker while tuned_params runs: the broker hands the unacknowledged step
    to a fresh worker, which runs it again, and the retrain succeeds (no run left STARTED)."""
    _require("RabbitMQ", AMQP_URL)
    optuna_db, dagster_db = databases(), databases()
    make_app({"broker": AMQP_URL, "backend": "rpc://"}).control.purge()  # no leftover steps
    from mlplatform.data import generate_market

    root = platform_home.parent
    data_file = root / "prices.csv"
    # the CLI runs the default validation: five years fit the 36-month evaluation window
    generate_market(**{**SMALL_MARKET, "years": 5}).prices.to_csv(data_file, index=False)
    shared = root / "shared-io"
    env = {
        config.DATA_PATH_ENV: str(data_file),
        config.IO_DIR_ENV: str(shared),
        config.OPTUNA_STORAGE_ENV: optuna_db,
        config.CELERY_BROKER_ENV: AMQP_URL,
        config.CELERY_BACKEND_ENV: "rpc://",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    instance = _postgres_instance(platform_home / "dagster", dagster_db, monkeypatch)
    first_log, second_log, run_log = root / "worker-1.log", root / "worker-2.log", root / "run.log"
    first = _celery_worker("first@%h", first_log)
    second: subprocess.Popen | None = None
    run = subprocess.Popen(
        [sys.executable, "-m", "mlplatform", "run", "--executor", "celery", "--trials", "6"],
        stdout=run_log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=config.PROJECT_ROOT,
    )
    try:

        def tuning_started() -> bool:
            runs = instance.get_runs()
            return bool(runs) and any(
                r.step_key == "tuned_params"
                for r in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)
            )

        _wait_for(tuning_started, "tuned_params never started on the first worker", run_log)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its process group, no clean-up
        first.wait(timeout=30)
        second = _celery_worker("second@%h", second_log)
        assert run.wait(timeout=600) == 0, run_log.read_text()[-3000:]
        (dagster_run,) = instance.get_runs()
        assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
        # The broker URL (it may carry a password) comes from the environment, not run config.
        assert AMQP_URL not in repr(dagster_run.run_config)
        starts = instance.all_logs(dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
        tuning = [r.dagster_event.pid for r in starts if r.step_key == "tuned_params"]
        assert len(tuning) == 2  # started on the first worker, run again on the second
        assert os.getpgid(tuning[-1]) == second.pid
        later = {
            r.dagster_event.pid
            for r in starts
            if r.step_key in ("staging_model", "backtest_report")
        }
        assert later and {os.getpgid(pid) for pid in later} == {second.pid}
        assert (shared / "tuned_params").exists()  # asset values on the shared path
        assert not (config.home_dir() / "io").exists()
    finally:
        if run.poll() is None:
            run.kill()
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)


def test_multiprocess_executor_runs_the_step_in_another_process(platform_home: Path) -> None:
    from mlplatform.cli import prepare_home

    prepare_home()
    instance = dg.DagsterInstance.get()
    result = execute(
        build_definitions(),
        instance,
        trigger="test",
        job="repair_export_job",
        executor="multiprocess",
    )
    assert result.success, failure_message(result)
    (start,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)
    assert start.dagster_event is not None and start.dagster_event.pid != os.getpid()
    assert (config.io_dir() / result.run_id / "repair_production" / "result").exists()


def test_the_code_location_runs_on_celery_when_the_environment_says_so(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build_definitions().resolve_job_def("retrain_job").executor_def.name == (
        "multi_or_in_process_executor"
    )
    monkeypatch.setenv(config.EXECUTOR_ENV, "celery")
    assert build_definitions().resolve_job_def("retrain_job").executor_def.name == "celery"


def test_a_celery_run_without_a_shared_io_dir_is_refused_before_any_work(
    platform_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--executor", "celery", "--trials", "1"]) == 2
    assert config.IO_DIR_ENV in capsys.readouterr().err
    assert dg.DagsterInstance.get().get_runs() == []
