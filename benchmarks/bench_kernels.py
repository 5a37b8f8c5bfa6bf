"""Benchmark: each hand-written kernel against the library call it replaces, same data, same run.

The project writes its own version of a library call only where it is measurably faster; this
script is that measurement. Sizes are those of a 2,000-ticker x 10-year retrain (5.2 M bars, a
3-year evaluation window of 1.5 M rows, a training sample of 1 M). Every pair's outputs are
asserted equal before any figure is printed; times are medians of --repeat runs, the two sides
interleaved.

    .venv/bin/python benchmarks/bench_kernels.py
    .venv/bin/python benchmarks/bench_kernels.py --tickers 200 --repeat 1      # quick

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd
import pandera.pandas as pa
from bench_features import on_one_core  # a sibling script: benchmarks/ is on sys.path
from scipy import stats
from sklearn import metrics as sk

from mlplatform.data import PRICES_SCHEMA, fingerprint, generate_market, synthetic
from mlplatform.data.codes import factorize_sorted
from mlplatform.data.schema import PRICE_COLUMNS, VALUE_COLUMNS
from mlplatform.evaluation.backtest import BacktestSpec, previous_direction, run_backtest
from mlplatform.evaluation.metrics import PROB_CLIP, classification_metrics, roc_auc
from mlplatform.evaluation.walk_forward import bars_for_window
from mlplatform.features import FEATURE_COLUMNS
from mlplatform.parallel import cores
from mlplatform.training.model import rows_of

AS_OF = "2026-06-30"
T = TypeVar("T")


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


def plain_fingerprint(prices: pd.DataFrame) -> str:
    """The v1 digest written the obvious way: every ticker converted and joined, every column
    copied to bytes (prices already sorted by ticker then date)."""
    digest = hashlib.sha256()
    digest.update(b"mlplatform.prices.v1\0" + ",".join(PRICE_COLUMNS).encode() + b"\0")
    digest.update(np.int64(len(prices)).tobytes())
    digest.update(prices["date"].to_numpy(dtype="datetime64[ns]").astype("<i8").tobytes())
    digest.update("\n".join(prices["ticker"].astype(str)).encode("utf-8") + b"\0")
    for column in VALUE_COLUMNS:
        digest.update((prices[column].to_numpy(dtype="float64") + 0.0).astype("<f8").tobytes())
    return digest.hexdigest()


def pandera_defaults(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """The same schema with pandera's defaults: checks mask NaNs first, validation copies."""
    plain = pa.DataFrameSchema(
        columns=copy.deepcopy(schema.columns),
        checks=copy.deepcopy(schema.checks),
        index=schema.index,
        strict=schema.strict,
        coerce=schema.coerce,
        unique=schema.unique,
    )
    for check in [*plain.checks, *(c for col in plain.columns.values() for c in col.checks)]:
        check.ignore_na = True
    return plain


def sklearn_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": sk.accuracy_score(y, p > 0.5),
        "balanced_accuracy": sk.balanced_accuracy_score(y, p > 0.5),
        "auc": sk.roc_auc_score(y, p),
        "log_loss": sk.log_loss(y, np.clip(p, PROB_CLIP, 1 - PROB_CLIP)),
        "brier": sk.brier_score_loss(y, p),
    }


def scipy_auc(y: np.ndarray, p: np.ndarray) -> float:
    up = y == 1
    u = stats.mannwhitneyu(p[up], p[~up], use_continuity=False, method="asymptotic").statistic
    return float(u / (up.sum() * (~up).sum()))


def pandas_previous_direction(prices: pd.DataFrame, index: pd.MultiIndex) -> pd.Series:
    """The previous bar's direction the plain pandas way: sort, per-ticker shift, tuple reindex."""
    px = prices[["date", "ticker", "close"]].copy()
    px["ticker"] = px["ticker"].astype(str)
    px = px.sort_values(["ticker", "date"])
    prev_close = px.groupby("ticker", sort=False)["close"].shift(1)
    prev_return = px["close"].to_numpy() / prev_close.to_numpy() - 1.0
    prev_up = np.where(np.isnan(prev_return), np.nan, (prev_return > 0).astype(float))
    prev_dir = pd.Series(prev_up, index=pd.MultiIndex.from_frame(px[["date", "ticker"]]))
    return prev_dir.reindex(index)


def one_year_per_draw(fn: Callable[[], T]) -> T:
    """fn() with the synthetic market's tickers drawing one year per call, as they did before."""
    kept = synthetic._YEARS_PER_DRAW
    synthetic._YEARS_PER_DRAW = 1
    try:
        return fn()
    finally:
        synthetic._YEARS_PER_DRAW = kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=2000)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    r = args.repeat
    rows: list[tuple[str, float, float, str]] = []

    market = on_one_core(
        lambda: generate_market(n_tickers=args.tickers, years=args.years, as_of=AS_OF)
    )
    prices = market.prices
    print(f"prices: {len(prices):,} bars, {args.tickers} tickers, {cores()} cores")

    a, b, ours, lib = _timed(
        lambda: generate_market(n_tickers=args.tickers, years=args.years, as_of=AS_OF).prices,
        lambda: on_one_core(
            lambda: generate_market(n_tickers=args.tickers, years=args.years, as_of=AS_OF).prices
        ),
        r,
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    rows.append(("synthetic market, threads vs one core", ours, lib, "identical bars"))

    a, b, ours, lib = _timed(
        lambda: generate_market(n_tickers=args.tickers, years=args.years, as_of=AS_OF).prices,
        lambda: one_year_per_draw(
            lambda: generate_market(n_tickers=args.tickers, years=args.years, as_of=AS_OF).prices
        ),
        r,
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    years = synthetic._YEARS_PER_DRAW
    rows.append(
        (f"synthetic market, {years} years per draw call vs 1", ours, lib, "identical bars")
    )

    columns = {name: prices[name].to_numpy().copy() for name in prices.columns}
    a, b, ours, lib = _timed(
        lambda: pd.DataFrame(columns, copy=False), lambda: pd.DataFrame(columns), r
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    rows.append(("frame of fresh columns, copy=False vs pandas' default", ours, lib, "equal"))

    tickers = prices["ticker"].to_numpy()  # as text, as any frame sorted by ticker holds them
    a, b, ours, lib = _timed(
        lambda: factorize_sorted(tickers), lambda: pd.factorize(tickers, sort=True), r
    )
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    rows.append(("ticker codes: sorted runs vs pd.factorize(sort=True)", ours, lib, "equal"))

    a, b, ours, lib = _timed(
        lambda: factorize_sorted(prices["ticker"]), lambda: factorize_sorted(tickers), r
    )
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    rows.append(("ticker codes: categorical vs sorted runs of text", ours, lib, "equal"))

    as_text = prices.assign(ticker=tickers)
    a, b, ours, lib = _timed(
        lambda: pickle.loads(pickle.dumps(prices, protocol=5)),
        lambda: pickle.loads(pickle.dumps(as_text, protocol=5)),
        r,
    )
    pd.testing.assert_frame_equal(a.assign(ticker=a["ticker"].astype(object)), b)
    rows.append(("prices pickled and read, categorical vs text tickers", ours, lib, "equal"))

    a, b, ours, lib = _timed(lambda: fingerprint(prices), lambda: plain_fingerprint(prices), r)
    assert a == b
    rows.append(("fingerprint vs the same digest written plainly", ours, lib, "same digest"))

    plain = pandera_defaults(PRICES_SCHEMA)
    a, b, ours, lib = _timed(
        lambda: PRICES_SCHEMA.validate(prices), lambda: plain.validate(prices), r
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    rows.append(("prices type check vs pandera's defaults", ours, lib, "both pass"))

    rng = np.random.default_rng(0)
    n_eval = min(len(prices), args.tickers * 750)  # a 3-year evaluation window
    y = (rng.uniform(size=n_eval) < 0.51).astype(np.int8)
    p = np.clip(0.5 + 0.04 * (y - 0.5) + rng.normal(0, 0.03, n_eval), 0, 1)
    a, b, ours, lib = _timed(lambda: classification_metrics(y, p), lambda: sklearn_scores(y, p), r)
    for key, value in b.items():
        assert math.isclose(a[key], value, rel_tol=1e-9, abs_tol=1e-12), key
    rows.append((f"five scores on {n_eval:,} rows vs scikit-learn", ours, lib, "equal to 1e-9"))
    model = np.round(p, 6)  # a model's scores: many distinct values, some shared
    a, b, ours, lib = _timed(lambda: roc_auc(y, model), lambda: scipy_auc(y, model), r)
    assert a == b, (a, b)
    rows.append((f"AUC on {n_eval:,} rows vs scipy's Mann-Whitney U", ours, lib, "equal"))

    days = pd.bdate_range("2023-07-03", periods=max(n_eval // args.tickers, 1))
    names = pd.Index([f"T{i:04d}" for i in range(args.tickers)])
    evaluated = pd.MultiIndex.from_product([days, names], names=["date", "ticker"])[:n_eval]
    labels = pd.Series(y, index=evaluated, name="label")
    after = pd.Series(rng.normal(0, 0.01, n_eval), index=evaluated)
    models = {
        name: pd.Series(np.clip(p + rng.normal(0, 0.02, n_eval), 0, 1), index=evaluated)
        for name in ("staging", "production", "bayes_optimal", "previous_direction")
    }
    models["always_up"] = pd.Series(1.0, index=evaluated)
    models["training_majority"] = pd.Series(0.51, index=evaluated)
    spec = BacktestSpec(cost_bps=5.0, n_trials={"staging": 50}, trial_sharpes=[0.0, 0.02])

    def backtest() -> dict[str, Any]:
        return run_backtest(models, labels, after, spec, hold_returns=after).metrics

    a, b, ours, lib = _timed(backtest, lambda: on_one_core(backtest), r)
    assert json.dumps(a) == json.dumps(b)
    rows.append(("backtest of 6 models, one per core vs one core", ours, lib, "equal"))

    bar_dates = np.sort(prices["date"].unique())
    first = pd.Timestamp(bar_dates[-min(len(days), len(bar_dates))])  # the evaluation window
    window = bars_for_window(prices, first.date())
    scored = pd.MultiIndex.from_product(
        [pd.DatetimeIndex(bar_dates[bar_dates >= first]), np.unique(tickers)],
        names=["date", "ticker"],
    )
    a, b, ours, lib = _timed(
        lambda: previous_direction(window, scored),
        lambda: pandas_previous_direction(window, scored),
        r,
    )
    pd.testing.assert_series_equal(a, b, check_exact=True)
    rows.append((f"previous direction, {len(scored):,} rows vs pandas", ours, lib, "equal"))

    n_train = min(1_000_000, n_eval)
    params = {"verbose": -1}
    binned = lgb.Dataset(
        rng.normal(size=(n_train, len(FEATURE_COLUMNS))).astype(np.float32),
        label=rng.integers(0, 2, n_train),
        params=params,
    ).construct()
    block = np.arange(n_train * 9 // 10)  # a walk-forward block's rows: a prefix
    a, b, ours, lib = _timed(
        lambda: rows_of(binned, block, params).construct(),
        lambda: binned.subset(block.tolist(), params=params).construct(),
        r,
    )
    assert np.array_equal(a.get_label(), b.get_label()) and a.num_data() == b.num_data()
    rows.append((f"block rows of a binned Dataset, {len(block):,} vs subset", ours, lib, "equal"))

    print(f"\n{'kernel':58} {'ours s':>8} {'baseline s':>11} {'speed-up':>9}  outputs")
    for name, mine, theirs, same in rows:
        print(f"{name:58} {mine:8.3f} {theirs:11.3f} {theirs / mine:8.1f}x  {same}")
    print(
        json.dumps(
            {
                "benchmark": "kernels",
                "tickers": args.tickers,
                "bars": len(prices),
                "repeat": r,
                "cores": cores(),
                "kernels": [
                    {"kernel": n, "ours_s": round(m, 4), "baseline_s": round(t, 4)}
                    for n, m, t, _ in rows
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
