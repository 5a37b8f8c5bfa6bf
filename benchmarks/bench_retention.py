"""The home folder's size after N simulated weekly retrains, without retention and with a weekly
prune (the baseline is the same retrains, nothing removed).

Each simulated retrain does what a weekly retrain leaves behind, at a small size: a parent MLflow
run with nested trial runs (params, metrics), an Optuna study of as many trials, a LightGBM
Booster registered as staging (run, logged model, registry version, models/staging) and a
backtest report; every `--promote-every`-th retrain is promoted. A week passes between retrains:
every registered version's creation time moves a week back in the store, so the policy's age
rule sees the ages a real weekly schedule would. With retention, `prune` runs after each retrain,
as weekly_prune_schedule does. Sizes are the bytes of every file under the home folder (MLflow's
and Optuna's SQLite files keep their freed pages for reuse rather than shrinking).

    python -m benchmarks.bench_retention --retrains 100
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import optuna
from mlflow import MlflowClient

from benchmarks.bench_promotion import small_booster
from mlplatform import config
from mlplatform.registry import ModelPackage, Registry, RetentionPolicy, promote, prune, register

WEEK_MS = int(timedelta(days=7).total_seconds() * 1000)


def folder_bytes(root: Path) -> int:
    return sum(
        (Path(folder) / name).stat().st_size
        for folder, _dirs, files in os.walk(root)
        for name in files
    )


class Home:
    """One home folder: MLflow store and artifacts, Optuna storage and reports, as the platform
    lays them out; models/ beside it (the export is not the home folder)."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        (self.home / "mlflow").mkdir(parents=True)
        (self.home / "optuna").mkdir()
        self.db = self.home / "mlflow" / "mlflow.db"
        self.uri = f"sqlite:///{self.db}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.experiment_id = self.client.create_experiment(
            config.EXPERIMENT_NAME, artifact_location=str(self.home / "mlflow" / "artifacts")
        )
        self.registry = Registry(
            self.uri,
            root / "models",
            optuna_storage=f"sqlite:///{self.home / 'optuna' / 'studies.db'}",
            reports_dir=self.home / "reports",
        )

    def a_week_passes(self) -> None:
        """Every version registered so far is a week older."""
        with sqlite3.connect(self.db) as db:
            db.execute("UPDATE model_versions SET creation_time = creation_time - ?", (WEEK_MS,))

    def retrain(self, week: int, args: argparse.Namespace) -> str:
        parent = self.client.create_run(self.experiment_id, run_name=f"retrain-{week}")
        study = optuna.create_study(
            study_name=f"{config.MODEL_NAME}:week{week}", storage=self.registry.optuna_storage
        )
        for number in range(args.trials):
            trial = study.ask()
            params = {
                "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
                "num_leaves": trial.suggest_int("num_leaves", 8, 128),
            }
            loss = 0.69 - 0.01 * np.random.default_rng(week * 1000 + number).random()
            study.tell(trial, loss)
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"trial-{number:03d}",
                tags={"mlflow.parentRunId": parent.info.run_id},
            )
            for key, value in params.items():
                self.client.log_param(run.info.run_id, key, value)
            self.client.log_metric(run.info.run_id, "cv_log_loss", loss)
            self.client.set_terminated(run.info.run_id)
        booster, X = small_booster(week, args.features, args.trees, rows=2000)
        package = ModelPackage(
            booster,
            semver=f"1.{week}.0",
            tags={"data_fingerprint": f"fp{week}", "tuning_study": study.study_name},
            input_example=X,
            reference={"n_bins": 10},
            metadata={"week": week},
        )
        version = register(self.registry, package, run_id=parent.info.run_id).version
        self.client.set_terminated(parent.info.run_id)
        reports = self.registry.reports_dir
        assert reports is not None
        reports.mkdir(exist_ok=True)
        (reports / f"backtest_v{version}.html").write_text("<td>0.5</td>" * (args.report_kb * 85))
        if week % args.promote_every == 0:
            promote(self.registry, version, actor="bench", reason="weekly", run_id="bench")
        return version


def simulate(root: Path, args: argparse.Namespace, policy: RetentionPolicy | None) -> dict:
    home = Home(root)
    sizes, prune_s = [], []
    removed = 0
    for week in range(1, args.retrains + 1):
        home.a_week_passes()
        home.retrain(week, args)
        if policy is not None:
            start = time.perf_counter()
            removed += len(prune(home.registry, policy).removal.versions)
            prune_s.append(time.perf_counter() - start)
        sizes.append(folder_bytes(home.home))
    versions = home.client.search_model_versions(f"name = '{config.MODEL_NAME}'")
    return {
        "home_bytes": sizes[-1],
        "home_bytes_by_week": sizes,
        "versions_left": len(versions),
        "versions_removed": removed,
        "runs_left": len(home.client.search_runs([home.experiment_id], max_results=50_000)),
        "studies_left": len(optuna.get_all_study_names(home.registry.optuna_storage)),
        "prune_median_s": float(np.median(prune_s)) if prune_s else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrains", type=int, default=100, help="simulated weekly retrains")
    parser.add_argument("--trials", type=int, default=20, help="Optuna trials (nested runs) each")
    parser.add_argument("--trees", type=int, default=100, help="boosting rounds per model")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--report-kb", type=int, default=100, help="backtest report size")
    parser.add_argument("--promote-every", type=int, default=4, help="promote every k-th")
    parser.add_argument("--keep-last", type=int, default=config.RETENTION_KEEP_LAST)
    parser.add_argument("--keep-days", type=int, default=config.RETENTION_KEEP_DAYS)
    args = parser.parse_args()
    if args.retrains < 1 or args.trials < 1 or args.promote_every < 1:
        parser.error("--retrains, --trials and --promote-every must be at least 1")
    policy = RetentionPolicy(args.keep_last, args.keep_days)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        without = simulate(Path(tmp) / "without", args, None)
        with_prune = simulate(Path(tmp) / "with", args, policy)
    elapsed = time.perf_counter() - start

    mib = 1024 * 1024
    print(
        f"{args.retrains} weekly retrains ({args.trials} trials, {args.trees} trees x "
        f"{args.features} features, {args.report_kb} KB report; promoted every "
        f"{args.promote_every}); policy: {policy.describe()}"
    )
    print(f"{'':<22} {'home MiB':>9} {'versions':>9} {'runs':>7} {'studies':>8}")
    for label, r in (("without (baseline)", without), ("with weekly prune", with_prune)):
        print(
            f"{label:<22} {r['home_bytes'] / mib:>9.1f} {r['versions_left']:>9} "
            f"{r['runs_left']:>7} {r['studies_left']:>8}"
        )
    ratio = with_prune["home_bytes"] / without["home_bytes"]
    half = args.retrains // 2
    growth = [
        (r["home_bytes_by_week"][-1] - r["home_bytes_by_week"][half - 1])
        / max(args.retrains - half, 1)
        for r in (without, with_prune)
    ]
    print(
        f"with prune: {ratio:.0%} of the baseline's size; growth over the last "
        f"{args.retrains - half} weeks {growth[1] / 1024:.0f} KB/week vs "
        f"{growth[0] / 1024:.0f} KB/week; prune median {with_prune['prune_median_s']:.2f} s "
        f"({with_prune['versions_removed']} versions removed); {elapsed:.0f} s in all"
    )
    result = {
        "benchmark": "retention",
        "retrains": args.retrains,
        "trials": args.trials,
        "trees": args.trees,
        "features": args.features,
        "report_kb": args.report_kb,
        "promote_every": args.promote_every,
        "keep_last": args.keep_last,
        "keep_days": args.keep_days,
        "without": {k: v for k, v in without.items() if k != "home_bytes_by_week"},
        "with_prune": {k: v for k, v in with_prune.items() if k != "home_bytes_by_week"},
        "size_ratio": ratio,
        "growth_bytes_per_week": {"without": growth[0], "with_prune": growth[1]},
        "elapsed_s": elapsed,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
