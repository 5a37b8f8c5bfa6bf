"""What the sliced evaluation (mlplatform.evaluation.slices) costs beside the backtest it belongs
to, at a whole-market size: the backtest of staging and the naive rules over the evaluation
window without slices (the baseline), the slice keys (regimes and ticker groups from every bar),
and the backtest with slices; then the slice table itself.

Staging here is the market's true P(up) (the Bayes-optimal rule): no training, so the timings are
the evaluation's alone, and the table shows where the best possible edge lives. Times are medians
of --repeats. Last line: one JSON object.

    .venv/bin/python -m benchmarks.bench_slices                  # 2,000 tickers x 10 years
    .venv/bin/python -m benchmarks.bench_slices --tickers 500 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlplatform import config
from mlplatform.data.synthetic import generate_market
from mlplatform.evaluation import BacktestSpec, naive_rules, previous_direction, run_backtest
from mlplatform.evaluation.backtest import BacktestResult
from mlplatform.evaluation.slices import SliceKeys
from mlplatform.features import outcomes
from mlplatform.promotion.evidence import bars_for_window


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument(
        "--evaluation-months", type=int, default=config.VALIDATION.evaluation_months
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=config.SYNTHETIC.seed)
    args = parser.parse_args()

    market = generate_market(
        seed=args.seed, n_tickers=args.tickers, years=args.years, as_of="2026-06-30"
    )
    prices = market.prices
    start = (prices["date"].max() - pd.DateOffset(months=args.evaluation_months)).date()
    truth = outcomes(prices, horizon=1)
    window = truth[truth.index.get_level_values("date") >= pd.Timestamp(start)]
    train = truth[truth.index.get_level_values("date") < pd.Timestamp(start)]
    previous = previous_direction(bars_for_window(prices, start), window.index)
    predictions = {
        "staging": market.prob_up.reindex(window.index),
        **naive_rules(float(train["label"].mean()), previous),
    }
    spec = BacktestSpec(cost_bps=config.BACKTEST.cost_bps)

    def backtest(keys: SliceKeys | None = None) -> BacktestResult:
        return run_backtest(
            predictions,
            window["label"],
            window["forward_return"],
            spec,
            hold_returns=window["hold_return"],
            slice_keys=keys,
        )

    print(
        f"data: {args.tickers:,} tickers x {args.years} years ({len(prices):,} bars); "
        f"evaluation window from {start}: {len(window):,} rows, {len(predictions)} models"
    )
    plain_s, _ = median_time(backtest, args.repeats)
    keys_s, keys = median_time(lambda: SliceKeys.from_prices(prices, start), args.repeats)
    sliced_s, result = median_time(lambda: backtest(keys), args.repeats)
    table_s = sliced_s - plain_s
    total_s = keys_s + table_s
    print(f"backtest without slices (baseline), median of {args.repeats}: {plain_s:.2f} s")
    print(f"slice keys (regimes and ticker groups from every bar):   {keys_s:.2f} s")
    print(f"backtest with slices:                                     {sliced_s:.2f} s")
    print(
        f"slicing in all: {total_s:.2f} s = {total_s / plain_s:.0%} of the backtest it belongs to "
        f"(keys {keys_s:.2f} s + table {table_s:.2f} s)"
    )
    slices = result.slices
    shown = slices[["kind", "slice", "rows", "dates", "staging_accuracy", "best_baseline"]].copy()
    shown["edge ± se (pp)"] = [
        "" if pd.isna(e) else f"{e * 100:+.2f} ± {s * 100:.2f}"
        for e, s in zip(slices["edge"], slices["edge_se"], strict=True)
    ]
    shown["note"] = slices["note"]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        json.dumps(
            {
                "tickers": args.tickers,
                "years": args.years,
                "bars": len(prices),
                "window_rows": len(window),
                "backtest_s": round(plain_s, 3),
                "slice_keys_s": round(keys_s, 3),
                "backtest_with_slices_s": round(sliced_s, 3),
                "slicing_s": round(total_s, 3),
                "slicing_share_of_backtest": round(total_s / plain_s, 3),
                "slices": len(slices),
                "figured_slices": int((slices["note"] == "").sum()),
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
