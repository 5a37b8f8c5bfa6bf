"""Tuning benchmark: the same Optuna study with the median pruner and with pruning off.

Same data, folds, seed and number of trials; prints wall time, boosting rounds trained, best value
and the relative saving side by side, then seconds per trial at 500 tickers x 10 years (skip with
--skip-large). Targets: pruning saves >= 40 % of the boosting rounds, with a best value within 1 %
of the unpruned study's. The last line is one JSON object.

    .venv/bin/python -m benchmarks.bench_tuning --tickers 20 --years 6 --trials 30 --seed 42
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads; see training/__init__

import numpy as np
import optuna
import pandas as pd

from mlplatform import config
from mlplatform.training import (
    StudySpec,
    TrialRecord,
    labelled_rows,
    plan_windows,
    run_study,
    walk_forward_folds,
)

ROUNDS_SAVING_TARGET = 0.40
BEST_VALUE_TOLERANCE = 0.01
ROWS = (
    "wall_s",
    "boosting_rounds",
    "best_value",
    "default_value",
    "n_complete",
    "n_pruned",
    "n_failed",
    "best_num_boost_round",
    "s_per_trial",
    "other_s",
)


def dataset(tickers: int, years: int, seed: int) -> tuple[pd.DataFrame, pd.Series, str]:
    """Development rows (backtest window cut off, as the pipeline does) and the data source."""
    try:
        from mlplatform.data import generate_market
        from mlplatform.features import compute_features, outcomes
    except ImportError as exc:  # the parts are built in parallel; say so instead of faking it
        raise SystemExit(f"mlplatform.data / mlplatform.features unavailable: {exc}") from exc
    market = generate_market(seed=seed, n_tickers=tickers, years=years)
    features = compute_features(market.prices)
    data = labelled_rows(features, outcomes(market.prices, horizon=config.VALIDATION.horizon))
    windows = plan_windows(
        data.dates.unique(),
        evaluation_months=config.VALIDATION.evaluation_months,
        refit_months=config.VALIDATION.refit_months,
        horizon=config.VALIDATION.horizon,
    )
    dev = data.within(windows.development)
    source = f"generate_market(seed={seed}, n_tickers={tickers}, years={years}) + compute_features"
    return dev.X, dev.y, source


def folds_for(X: pd.DataFrame) -> list:
    v = config.VALIDATION
    return walk_forward_folds(
        X.index.get_level_values("date").unique(),
        n_folds=v.n_folds,
        horizon=v.horizon,
        embargo_days=v.embargo_days,
        min_train_days=v.min_train_days,
    )


def study(
    X: pd.DataFrame, y: pd.Series, folds: list, *, pruner: str, trials: int, seed: int, root: Path
) -> dict[str, Any]:
    records: list[TrialRecord] = []
    started = time.perf_counter()
    result = run_study(
        X,
        y,
        folds,
        StudySpec(
            f"bench-{pruner}",
            f"sqlite:///{root / pruner / 'studies.db'}",
            n_trials=trials,
            pruner=pruner,
            seed=seed,
        ),
        trial_callback=records.append,
    )
    trial_s = sum(r.duration_s for r in records)
    return {
        "pruner": pruner,
        "wall_s": round(time.perf_counter() - started, 2),
        "boosting_rounds": result.boosting_rounds_total,
        "best_value": round(result.best_value, 6),
        "default_value": round(result.default_value, 6),
        "n_complete": result.n_complete,
        "n_pruned": result.n_pruned,
        "n_failed": result.n_failed,
        "best_num_boost_round": result.best_num_boost_round,
        "s_per_trial": round(trial_s / max(len(records), 1), 2),
        "other_s": round(result.duration_s - trial_s, 2),  # storage, default baseline, importances
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--years", type=int, default=6)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=config.TUNING.seed)
    parser.add_argument("--large-trials", type=int, default=2, help="trials at 500 x 10 years")
    parser.add_argument("--skip-large", action="store_true", help="omit the 500 x 10 years run")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlplatform").setLevel(logging.WARNING)

    t0 = time.perf_counter()
    X, y, source = dataset(args.tickers, args.years, args.seed)
    folds = folds_for(X)
    prep_s = time.perf_counter() - t0
    print(f"data: {source}: {len(X):,} dev rows x {X.shape[1]} features, {len(folds)} folds")
    print(f"      prepared in {prep_s:.1f} s; {args.trials} trials per study, seed {args.seed}")

    with tempfile.TemporaryDirectory(prefix="bench_tuning_") as tmp:
        root = Path(tmp)
        pruned = study(X, y, folds, pruner="median", trials=args.trials, seed=args.seed, root=root)
        baseline = study(X, y, folds, pruner="none", trials=args.trials, seed=args.seed, root=root)

        rounds_saving = 1.0 - pruned["boosting_rounds"] / baseline["boosting_rounds"]
        time_saving = 1.0 - pruned["wall_s"] / baseline["wall_s"]
        best_gap = pruned["best_value"] / baseline["best_value"] - 1.0
        print()
        print(f"{'':24}{'median pruner':>16}{'pruning off':>16}")
        for key in ROWS:
            print(f"{key:24}{pruned[key]!s:>16}{baseline[key]!s:>16}")
        print(
            f"\nsaving: {rounds_saving:.1%} of boosting rounds (target >= "
            f"{ROUNDS_SAVING_TARGET:.0%}), {time_saving:.1%} of wall time; best value "
            f"{best_gap:+.2%} vs unpruned (target within {BEST_VALUE_TOLERANCE:.0%})"
        )

        large: dict[str, Any] | None = None
        if not args.skip_large:
            t1 = time.perf_counter()
            XL, yL, source_l = dataset(500, 10, args.seed)
            folds_l = folds_for(XL)
            prep_l = time.perf_counter() - t1
            print(f"\nlarge: {source_l}: {len(XL):,} dev rows, prepared in {prep_l:.1f} s")
            large = study(
                XL,
                yL,
                folds_l,
                pruner="median",
                trials=args.large_trials,
                seed=args.seed,
                root=root,
            )
            large |= {"rows": len(XL), "prep_s": round(prep_l, 1)}
            print(
                f"large: {large['s_per_trial']} s per trial over {args.large_trials} trials "
                f"({large['boosting_rounds']} rounds; {large['wall_s']} s in all, "
                "incl. the default baseline)"
            )

    summary = {
        "benchmark": "tuning",
        "data": source,
        "dev_rows": len(X),
        "n_folds": len(folds),
        "trials": args.trials,
        "seed": args.seed,
        "median": pruned,
        "none": baseline,
        "rounds_saving": round(rounds_saving, 4),
        "wall_time_saving": round(time_saving, 4),
        "best_value_gap": round(best_gap, 6),
        "meets_rounds_target": rounds_saving >= ROUNDS_SAVING_TARGET,
        "meets_best_value_target": abs(best_gap) <= BEST_VALUE_TOLERANCE,
        "large_500x10": large,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "lightgbm_threads": 2,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "numpy": np.__version__,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
