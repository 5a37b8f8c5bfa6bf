"""Tuning benchmark: the study's stop rule and prior beside a full 50-trial study and LightGBM's
defaults, paired per market.

On each market (several seeds of the default market and one wider market) the same development
rows and purged folds are tuned twice in this one process, in alternating order so that the
machine's load falls on both alike: "rule" is the platform's study (the prior as first trial,
stopping once the best CV log loss moved by less than one CV standard error over
config.TUNING.stagnation_trials trials, 50 trials as the upper limit); "50 trials" is the study
as it was (the sampler's first draw, every one of 50 trials run). "defaults" is LightGBM's
defaults, untuned. Each recipe is then walked forward over the evaluation window tuning never
saw, as the backtest does. Printed: tuning CPU seconds, trials, CV log loss, walk-forward log
loss and accuracy per market, then the paired differences with their standard errors.
Targets (issue 30): tuning CPU at most 40 % of the 50-trial study's, walk-forward log loss not
worse than the 50-trial study's by more than one standard error. The last line is one JSON object
with cpu_ratio_vs_50_trials and log_loss_worse_in_se (mean paired difference over its standard
error; positive means worse).

    .venv/bin/python -m benchmarks.bench_tuning                # seeds 42-46 x 30, seed 42 x 200
    .venv/bin/python -m benchmarks.bench_tuning --seeds 42 43 --wide-tickers 0     # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads; see training/__init__

import numpy as np
import optuna
import pandas as pd

from mlplatform import config
from mlplatform.training import (
    DEFAULT_PARAMS,
    LabelledData,
    StudySpec,
    Windows,
    labelled_rows,
    plan_windows,
    run_study,
    walk_forward_folds,
    walk_forward_predictions,
)
from mlplatform.training.retrain import trial_returns, tuned_recipe

AS_OF = "2026-06-30"  # the last synthetic bar: fixed, so a rerun measures the same markets
CPU_RATIO_TARGET = 0.40
WORSE_IN_SE_TARGET = 1.0
ARMS = ("rule", "50 trials", "defaults")


@dataclass(frozen=True)
class Market:
    label: str
    data: LabelledData
    windows: Windows
    dev: LabelledData
    folds: list


def market(tickers: int, years: int, seed: int) -> Market:
    """A synthetic market's labelled rows, windows, development rows and tuning folds."""
    from mlplatform.data import generate_market
    from mlplatform.features import compute_features, outcomes

    bars = generate_market(seed=seed, n_tickers=tickers, years=years, as_of=AS_OF).prices
    v = config.VALIDATION
    data = labelled_rows(compute_features(bars), outcomes(bars, horizon=v.horizon))
    windows = plan_windows(
        data.dates.unique(),
        evaluation_months=v.evaluation_months,
        refit_months=v.refit_months,
        horizon=v.horizon,
    )
    dev = data.within(windows.development)
    return Market(f"seed {seed} {tickers}x{years}", data, windows, dev, folds_for(dev.X))


def dataset(tickers: int, years: int, seed: int) -> tuple[pd.DataFrame, pd.Series, str]:
    """Development rows (the evaluation window cut off, as the pipeline does) and their source."""
    m = market(tickers, years, seed)
    source = f"generate_market(seed={seed}, n_tickers={tickers}, years={years}, as_of={AS_OF})"
    return m.dev.X, m.dev.y, source


def folds_for(X: pd.DataFrame) -> list:
    v = config.VALIDATION
    return walk_forward_folds(
        X.index.get_level_values("date").unique(),
        n_folds=v.n_folds,
        horizon=v.horizon,
        embargo_days=v.embargo_days,
        min_train_days=v.min_train_days,
    )


def walk_forward(m: Market, params: dict[str, Any], rounds: int) -> tuple[float, float]:
    """(log loss, accuracy) of the recipe's walk-forward P(up) over the evaluation window."""
    recipe = tuned_recipe(
        params,
        rounds,
        seed=config.TUNING.seed,
        horizon=m.windows.horizon,
        max_training_rows=config.TRAINING.max_training_rows,
    )
    p_up = walk_forward_predictions(recipe, m.data, m.windows)
    y = m.data.within(m.windows.evaluation).y.reindex(p_up.index).to_numpy()
    p = np.clip(p_up.to_numpy(), 1e-15, 1 - 1e-15)
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return log_loss, float(np.mean((p > 0.5) == (y == 1)))


def tune(m: Market, arm: str, root: Path) -> tuple[dict[str, Any], Any]:
    """One study on the market: the platform's ("rule") or the old 50-trial one."""
    as_it_was = {"prior": None, "stagnation_trials": None} if arm == "50 trials" else {}
    spec = StudySpec(
        f"bench-{arm}",
        f"sqlite:///{root / arm.replace(' ', '-') / 'studies.db'}",
        n_trials=50,
        **as_it_was,
    )
    cpu = time.process_time()
    result = run_study(
        m.dev.X, m.dev.y, m.folds, spec, returns=trial_returns(m.dev, m.windows.horizon)
    )
    cpu = time.process_time() - cpu
    wf_ll, wf_acc = walk_forward(m, result.best_params, result.best_num_boost_round)
    row = {
        "cpu_s": round(cpu, 1),
        "trials": result.n_trials_tried,
        "pruned": result.n_pruned,
        "stop": result.stop_reason,
        "cv_noise": round(result.cv_noise, 6) if math.isfinite(result.cv_noise) else None,
        "cv_log_loss": round(result.best_value, 6),
        "wf_log_loss": round(wf_ll, 6),
        "wf_accuracy": round(wf_acc, 5),
    }
    return row, result


def one_market(m: Market, order: tuple[str, str], root: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    results = {}
    for arm in order:
        rows[arm], results[arm] = tune(m, arm, root / m.label.replace(" ", "_"))
    r = results["50 trials"]  # the defaults' CV value and rounds on the same folds
    wf_ll, wf_acc = walk_forward(m, dict(DEFAULT_PARAMS), r.default_num_boost_round)
    rows["defaults"] = {
        "cpu_s": 0.0,
        "trials": 0,
        "pruned": 0,
        "stop": "-",
        "cv_noise": None,
        "cv_log_loss": round(r.default_value, 6),
        "wf_log_loss": round(wf_ll, 6),
        "wf_accuracy": round(wf_acc, 5),
    }
    return rows


def paired(rows: list[dict[str, dict[str, Any]]], key: str, a: str, b: str) -> dict[str, float]:
    """Mean and standard error of a - b over the markets."""
    d = np.array([r[a][key] - r[b][key] for r in rows], dtype=float)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan
    return {"mean": float(np.mean(d)), "se": se}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--tickers", type=int, default=config.SYNTHETIC.n_tickers)
    parser.add_argument("--years", type=int, default=config.SYNTHETIC.years)
    parser.add_argument("--wide-tickers", type=int, default=200, help="0 = no wide market")
    parser.add_argument("--wide-seed", type=int, default=config.SYNTHETIC.seed)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlplatform").setLevel(logging.WARNING)

    plan = [(args.tickers, seed) for seed in args.seeds]
    if args.wide_tickers:
        plan.append((args.wide_tickers, args.wide_seed))
    print(
        f"markets: {', '.join(f'seed {s} {t}x{args.years}' for t, s in plan)}; stop rule: "
        f"{config.TUNING.stagnation_trials} trials without a move beyond one CV standard error; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    header = f"{'market':18}{'arm':>10}{'cpu s':>8}{'trials':>7}{'pruned':>7}{'stop':>12}"
    header += f"{'CV noise':>10}{'CV ll':>10}{'WF ll':>10}{'WF acc':>8}"
    print(header)
    rows: list[dict[str, dict[str, Any]]] = []
    labels: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_tuning_") as tmp:
        for i, (tickers, seed) in enumerate(plan):
            m = market(tickers, args.years, seed)
            order = ("rule", "50 trials") if i % 2 == 0 else ("50 trials", "rule")
            result = one_market(m, order, Path(tmp))
            rows.append(result)
            labels.append(m.label)
            for arm in ARMS:
                r = result[arm]
                noise = "-" if r["cv_noise"] is None else f"{r['cv_noise']:.5f}"
                print(
                    f"{m.label:18}{arm:>10}{r['cpu_s']:>8.1f}{r['trials']:>7}{r['pruned']:>7}"
                    f"{r['stop']:>12}{noise:>10}{r['cv_log_loss']:>10.5f}"
                    f"{r['wf_log_loss']:>10.5f}{r['wf_accuracy']:>8.4f}",
                    flush=True,
                )

    comparisons = (("rule", "50 trials"), ("rule", "defaults"), ("50 trials", "defaults"))
    keys = ("cpu_s", "cv_log_loss", "wf_log_loss", "wf_accuracy")
    diffs = {f"{a} - {b}": {k: paired(rows, k, a, b) for k in keys} for a, b in comparisons}
    print(f"\npaired differences over {len(rows)} markets, mean ± standard error")
    print(f"{'':14}" + "".join(f"{name:>26}" for name in diffs))
    for k in keys:
        cells = [f"{d[k]['mean']:+.5f} ± {d[k]['se']:.5f}" for d in diffs.values()]
        print(f"{k:14}" + "".join(f"{c:>26}" for c in cells))
    ratios = [r["rule"]["cpu_s"] / r["50 trials"]["cpu_s"] for r in rows]
    cpu_ratio = float(np.mean(ratios))
    worse = diffs["rule - 50 trials"]["wf_log_loss"]
    worse_in_se = worse["mean"] / worse["se"]
    print(
        f"\ntuning CPU of the rule: {cpu_ratio:.1%} of the 50-trial study's (mean of per-market "
        f"ratios; target <= {CPU_RATIO_TARGET:.0%}); walk-forward log loss {worse['mean']:+.6f} "
        f"= {worse_in_se:+.2f} standard errors vs the 50-trial study (target <= "
        f"{WORSE_IN_SE_TARGET:+.0f}; positive means worse)"
    )
    summary = {
        "benchmark": "tuning",
        "markets": labels,
        "stagnation_trials": config.TUNING.stagnation_trials,
        "rows": dict(zip(labels, rows, strict=True)),
        "paired": diffs,
        "cpu_ratios": [round(x, 4) for x in ratios],
        "cpu_ratio_vs_50_trials": round(cpu_ratio, 4),
        "log_loss_worse_in_se": round(worse_in_se, 3),
        "meets_cpu_target": cpu_ratio <= CPU_RATIO_TARGET,
        "meets_log_loss_target": worse_in_se <= WORSE_IN_SE_TARGET,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
