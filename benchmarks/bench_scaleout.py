"""Scale-out benchmark: tuning workers on one shared Postgres study, and the retrain on the
Postgres stack beside the embedded default.

1. Distinct trials per minute with 1, 2 and 4 Optuna worker processes on one study each (fresh
   Postgres database per count, same data, seed and trial budget), and duplicated parameter sets.
2. The whole retrain (raw_prices … backtest_report, checks included) through Dagster, in process,
   on the embedded stores (SQLite everywhere) and on the Postgres stack: Dagster instance from
   deploy/dagster-postgres.yaml, MLflow server on Postgres with proxied artifacts, Optuna on
   Postgres, the registry lock on Postgres. Last line: one JSON object.

    nice -n 10 .venv/bin/python -m benchmarks.bench_scaleout --trials 24 --retrain-trials 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads; see training/__init__

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from mlplatform import config
from mlplatform.orchestration.jobs import DATA_ASSETS, RETRAINED_ASSETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tuning import dataset, folds_for  # the same data as the tuning benchmark

RETRAIN = (*DATA_ASSETS, *RETRAINED_ASSETS)


def new_database(server: str, prefix: str) -> str:
    from mlplatform.cli import create_database

    url = f"{server}/{prefix}{uuid.uuid4().hex[:10]}"
    create_database(url)
    return url


def drop_database(server: str, url: str) -> None:
    engine = sa.create_engine(f"{server}/postgres", poolclass=sa.pool.NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        name = sa.engine.make_url(url).database
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def tuning(
    X, y, folds, *, server: str, prefix: str, workers: int, trials: int, seed: int
) -> dict[str, Any]:
    from mlplatform.training import StudySpec, run_study
    from mlplatform.training.tuning import make_storage

    url = new_database(server, prefix)
    try:
        started = time.perf_counter()
        result = run_study(
            X,
            y,
            folds,
            StudySpec("bench", url, n_trials=trials, pruner="median", seed=seed, workers=workers),
        )
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name="bench", storage=make_storage(url))
        done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        distinct = len({tuple(sorted(t.params.items())) for t in done})
        return {
            "workers": workers,
            "wall_s": round(wall, 1),
            "trials": len(done),
            "distinct": distinct,
            "duplicates": len(done) - distinct,
            "distinct_per_min": round(60.0 * distinct / wall, 2),
            "best_value": round(result.best_value, 6),
            "n_pruned": result.n_pruned,
        }
    finally:
        drop_database(server, url)


def free_port() -> int:
    for port in range(5100, 5200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 5100-5199")


def start_mlflow_server(backend: str, artifacts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`python -m mlplatform mlflow-server` (what `make mlflow-server` runs), once healthy."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlplatform", "mlflow-server", "--backend-store-uri", backend),
            *("--artifacts-destination", str(artifacts), "--port", str(port)),
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise RuntimeError(f"mlflow server did not start; see {log}")


def retrain(root: Path, market: dict[str, Any], trials: int, dagster_yaml: Path | None) -> float:
    """Wall seconds of the retrain assets through Dagster on the stores the environment names."""
    import dagster as dg

    from mlplatform.cli import execute, run_errors
    from mlplatform.definitions import build_definitions
    from mlplatform.orchestration.resources import MarketDataSource

    home = root / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if dagster_yaml is not None:
        shutil.copy(dagster_yaml, home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    defs = build_definitions({"market_data": MarketDataSource(**market)})
    started = time.perf_counter()
    result = execute(
        defs,
        instance,
        trigger="bench",
        assets=[dg.AssetKey(k) for k in RETRAIN],
        run_config={"ops": {"tuned_params": {"config": {"n_trials": trials}}}},
    )
    wall = time.perf_counter() - started
    errors = run_errors(result)  # a failed promotion gate is a verdict, not a failed run
    if errors:
        raise RuntimeError(f"retrain failed: {errors}")
    instance.dispose()
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--years", type=int, default=6)
    parser.add_argument("--trials", type=int, default=24, help="trial budget per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--retrain-tickers", type=int, default=10)
    parser.add_argument("--retrain-years", type=int, default=4)
    parser.add_argument("--retrain-trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=config.TUNING.seed)
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432")
    parser.add_argument("--db-prefix", default="bench_scaleout_", help="databases made and dropped")
    parser.add_argument("--skip-tuning", action="store_true", help="only the retrain comparison")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlplatform").setLevel(logging.WARNING)

    X, y, source = dataset(args.tickers, args.years, args.seed)
    folds = folds_for(X)
    print(f"tuning data: {source}: {len(X):,} dev rows, {len(folds)} folds")
    print(f"{args.trials} trials per worker count on one Postgres study each, seed {args.seed}")
    runs = []
    for workers in [] if args.skip_tuning else args.workers:
        row = tuning(
            X,
            y,
            folds,
            server=args.postgres,
            prefix=args.db_prefix,
            workers=workers,
            trials=args.trials,
            seed=args.seed,
        )
        runs.append(row)
        print(
            f"  workers={workers}: {row['distinct']}/{row['trials']} distinct, "
            f"{row['duplicates']} duplicates, {row['wall_s']} s, "
            f"{row['distinct_per_min']} distinct trials/min, best {row['best_value']}"
        )

    market = {
        "seed": args.seed,
        "n_tickers": args.retrain_tickers,
        "years": args.retrain_years,
        "as_of": "2026-06-30",
    }
    retrain_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaleout_") as tmp:
        root = Path(tmp)
        os.environ[config.MODELS_DIR_ENV] = str(root / "models-embedded")
        os.environ[config.HOME_ENV] = str(root / "embedded")
        retrain_s["embedded"] = retrain(root / "embedded", market, args.retrain_trials, None)
        print(f"retrain, embedded (SQLite, no server): {retrain_s['embedded']:.1f} s")

        databases = [new_database(args.postgres, args.db_prefix) for _ in range(3)]
        mlflow_db, optuna_db, dagster_db = databases
        server, url = start_mlflow_server(mlflow_db, root / "artifacts", root / "mlflow.log")
        try:
            pg = sa.engine.make_url(dagster_db)
            os.environ.update(
                {
                    config.HOME_ENV: str(root / "postgres"),
                    config.MODELS_DIR_ENV: str(root / "models-postgres"),
                    config.MLFLOW_TRACKING_URI_ENV: url,
                    config.OPTUNA_STORAGE_ENV: optuna_db,
                    config.REGISTRY_LOCK_URL_ENV: optuna_db,
                    "MLPLATFORM_PG_USER": str(pg.username),
                    "MLPLATFORM_PG_PASSWORD": pg.password or "",
                    "MLPLATFORM_PG_HOST": str(pg.host),
                    "MLPLATFORM_PG_DB": str(pg.database),
                    "MLPLATFORM_COMPUTE_LOGS_DIR": str(root / "compute-logs"),
                }
            )
            yaml_path = config.PROJECT_ROOT / "deploy" / "dagster-postgres.yaml"
            retrain_s["postgres"] = retrain(
                root / "postgres", market, args.retrain_trials, yaml_path
            )
            print(f"retrain, Postgres stack + MLflow server: {retrain_s['postgres']:.1f} s")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            for db in databases:
                drop_database(args.postgres, db)

    base = next((r for r in runs if r["workers"] == 1), runs[0] if runs else None)
    summary = {
        "benchmark": "scaleout",
        "tuning_data": source,
        "dev_rows": len(X),
        "trials_per_run": args.trials,
        "seed": args.seed,
        "tuning": runs,
        "speedup_vs_1_worker": {
            str(r["workers"]): round(r["distinct_per_min"] / base["distinct_per_min"], 2)
            for r in runs
            if base is not None
        },
        "duplicates_total": sum(r["duplicates"] for r in runs),
        "retrain_market": market,
        "retrain_trials": args.retrain_trials,
        "retrain_s": {k: round(v, 1) for k, v in retrain_s.items()},
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "lightgbm_threads_per_worker": 2,
        "python": platform.python_version(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
