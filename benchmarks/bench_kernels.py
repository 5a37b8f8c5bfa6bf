"""Benchmark: the hand-written pieces that stay, each against the plain library call, same data,
same run, at the sizes of a 2,000-ticker x 10-year retrain (5.2 M bars, a 3-year evaluation
window of 1.5 M rows). Every pair's outputs are asserted equal before a figure is printed; times
are medians of --repeat runs, the two sides interleaved.

    .venv/bin/python benchmarks/bench_kernels.py
    .venv/bin/python benchmarks/bench_kernels.py --tickers 200 --repeat 1      # quick

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from bench_features import on_one_core  # a sibling script: benchmarks/ is on sys.path

from mlplatform.data import generate_market
from mlplatform.evaluation.backtest import BacktestSpec, run_backtest
from mlplatform.features import compute_features, outcomes
from mlplatform.parallel import cores
from mlplatform.training import dataset, labelled_rows

AS_OF = "2026-06-30"


def _timed(ours: Callable[[], Any], library: Callable[[], Any], repeat: int) -> tuple[Any, ...]:
    """(our result, library result, our median s, library median s), runs interleaved."""
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        a = ours()
        mine.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = library()
        theirs.append(time.perf_counter() - t)
    return a, b, statistics.median(mine), statistics.median(theirs)


def by_get_indexer(features: pd.DataFrame, frame: pd.DataFrame) -> dataset.LabelledData:
    """labelled_rows with its leading-rows check switched off: pandas' get_indexer alone."""
    kept = dataset._leading_rows
    dataset._leading_rows = lambda index, rows: False
    try:
        return labelled_rows(features, frame)
    finally:
        dataset._leading_rows = kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=2000)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    r = args.repeat
    rows: list[tuple[str, float, float, str]] = []
    prices = generate_market(n_tickers=args.tickers, years=args.years, as_of=AS_OF).prices
    print(f"prices: {len(prices):,} bars, {args.tickers} tickers, {cores()} cores")

    features = compute_features(prices)
    frame = labelled_rows(features, outcomes(prices)).outcome_frame()  # the labels asset
    a, b, ours, lib = _timed(
        lambda: labelled_rows(features, frame), lambda: by_get_indexer(features, frame), r
    )
    pd.testing.assert_frame_equal(a.X, b.X, check_exact=True)
    pd.testing.assert_frame_equal(a.outcome_frame(), b.outcome_frame(), check_exact=True)
    rows.append((f"labelled rows, {len(a.X):,}: leading rows vs get_indexer", ours, lib, "equal"))

    rng = np.random.default_rng(0)
    n_eval = min(len(frame), args.tickers * 750)  # a 3-year evaluation window
    evaluated = frame.iloc[-n_eval:]
    y = evaluated["label"]
    p = np.clip(0.5 + 0.04 * (y.to_numpy() - 0.5) + rng.normal(0, 0.03, n_eval), 0, 1)
    models = {
        name: pd.Series(np.clip(p + rng.normal(0, 0.02, n_eval), 0, 1), index=y.index)
        for name in ("staging", "production", "bayes_optimal", "previous_direction")
    }
    models["always_up"] = pd.Series(1.0, index=y.index)
    models["training_majority"] = pd.Series(0.51, index=y.index)
    after = evaluated["forward_return"]
    spec = BacktestSpec(cost_bps=5.0, n_trials={"staging": 50}, trial_sharpes=[0.0, 0.02])

    def backtest() -> dict[str, Any]:
        return run_backtest(models, y, after, spec, hold_returns=evaluated["hold_return"]).metrics

    a, b, ours, lib = _timed(backtest, lambda: on_one_core(backtest), r)
    assert json.dumps(a) == json.dumps(b)
    rows.append((f"backtest of 6 models on {n_eval:,} rows, threads vs one", ours, lib, "equal"))

    print(f"\n{'piece':58} {'ours s':>8} {'library s':>10} {'speed-up':>9}  outputs")
    for name, mine, theirs, same in rows:
        print(f"{name:58} {mine:8.3f} {theirs:10.3f} {theirs / mine:8.1f}x  {same}")
    print(
        json.dumps(
            {
                "benchmark": "kernels",
                "tickers": args.tickers,
                "bars": len(prices),
                "repeat": r,
                "cores": cores(),
                "kernels": [
                    {"kernel": n, "ours_s": round(m, 4), "library_s": round(t, 4)}
                    for n, m, t, _ in rows
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
