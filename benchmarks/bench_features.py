"""Benchmark: vectorised compute_features against a straightforward per-ticker pandas loop.

Both compute the same columns on the same prices; the outputs are asserted equal at float32
tolerance before any figure is printed. compute_features also runs pinned to one core (this
process's CPU affinity narrowed to one CPU), so its threads' gain shows beside it, and that
output is asserted identical. Wall time is the median of --repeat runs (no tracing);
peak memory is measured in one extra traced run of each (tracemalloc, numpy buffers included).

    .venv/bin/python benchmarks/bench_features.py                     # 500 tickers x 10 years
    .venv/bin/python benchmarks/bench_features.py --tickers 20 --years 2 --repeat 1

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from mlplatform.features import FEATURE_COLUMNS, compute_features
from mlplatform.parallel import cores

AS_OF = "2026-10-30"  # fixed, so every run benchmarks the same bars
RANKED = ("ret_1", "ret_5", "ret_21", "vol_21", "volume_z_21", "rsi_14")


def make_prices(n_tickers: int, years: int, seed: int = 7) -> tuple[pd.DataFrame, str]:
    """The project's synthetic market when mlplatform.data has it, else a local random walk."""
    try:
        from mlplatform.data import generate_market
    except ImportError:
        generate_market = None
    if generate_market is not None:
        market = generate_market(seed=seed, n_tickers=n_tickers, years=years, as_of=AS_OF)
        return market.prices, "mlplatform.data.generate_market"
    return random_walk_prices(n_tickers, years, seed), "local random walk"


def random_walk_prices(n_tickers: int, years: int, seed: int = 7) -> pd.DataFrame:
    """Valid long-format OHLCV random walks; tickers start on different dates."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(end=AS_OF, periods=years * 261)
    n = len(dates)
    starts = rng.integers(0, max(n // 10, 1), n_tickers)
    starts[0] = 0
    lens = n - starts
    total = int(lens.sum())
    ticker = np.repeat(np.arange(n_tickers), lens)
    date_idx = np.concatenate([np.arange(s, n) for s in starts])
    first = np.concatenate(([True], ticker[1:] != ticker[:-1]))
    step = rng.normal(0.0003, 0.018, total)
    step[first] = np.log(rng.uniform(10, 500, n_tickers))
    log_close = np.cumsum(step)
    # reset the running sum at each ticker start so every walk starts at its own level
    group_start = np.maximum.accumulate(np.where(first, np.arange(total), 0))
    offset = (log_close - step)[group_start]
    close = np.exp(log_close - offset)
    open_ = close * np.exp(rng.normal(0, 0.006, total))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.012, total))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.012, total))
    volume = np.round(rng.lognormal(13, 0.5, total))
    return pd.DataFrame(
        {
            "date": dates.to_numpy()[date_idx],
            "ticker": np.array([f"T{i:04d}" for i in range(n_tickers)], dtype=object)[ticker],
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def _one_ticker(g: pd.DataFrame) -> pd.DataFrame:
    """Every per-ticker column for one ticker, with plain pandas Series operations."""
    o, h, lo, c, v = g["open"], g["high"], g["low"], g["close"], g["volume"]
    f = pd.DataFrame(index=g.index)
    r1 = np.log(c / c.shift(1))
    for lag in (1, 2, 5, 10, 21):
        f[f"ret_{lag}"] = np.log(c / c.shift(lag))
    for w in (5, 21, 63):
        f[f"vol_{w}"] = r1.rolling(w).std()
    d = c.diff()
    gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    loss = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    f["rsi_14"] = (100 * gain / (gain + loss)).mask((gain + loss) == 0, 50.0)
    ema12 = c.ewm(span=12, adjust=False, min_periods=12).mean()
    ema26 = c.ewm(span=26, adjust=False, min_periods=26).mean()
    line = (ema12 - ema26) / c
    signal = line.ewm(span=9, adjust=False, min_periods=9).mean()
    f["macd_line"], f["macd_signal"], f["macd_hist"] = line, signal, line - signal
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    f["bb_pctb_20"] = ((c - (mid - 2 * sd)) / (4 * sd)).mask(sd <= 1e-12 * mid.abs(), 0.5)
    pc = c.shift(1)
    tr = pd.concat([h - lo, (h - pc).abs(), (lo - pc).abs()], axis=1).max(axis=1, skipna=False)
    f["atr_14"] = tr.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean() / c
    lv = np.log1p(v)
    m, s = lv.rolling(21).mean(), lv.rolling(21).std()
    f["volume_z_21"] = ((lv - m) / s).mask(s <= 1e-9 * m.abs().clip(lower=1.0), 0.0)
    f["range_hl"] = (h - lo) / c
    f["gap_overnight"] = np.log(o / pc)
    f["clv"] = (((c - lo) - (h - c)) / (h - lo)).mask(h == lo, 0.0)
    f["day_of_week"] = g["date"].dt.dayofweek.astype(float)
    f.index = pd.MultiIndex.from_arrays([g["date"], g["ticker"]])
    return f


def loop_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The straightforward baseline: a Python loop over tickers, then ranks per date."""
    frames = [_one_ticker(g.sort_values("date")) for _, g in prices.groupby("ticker", sort=True)]
    feats = pd.concat(frames).astype(np.float32)
    feats.index.names = ["date", "ticker"]
    warm = np.isfinite(feats).all(axis=1)
    for name in RANKED:
        x = feats[name].where(warm)
        by_date = x.groupby(level="date")
        feats[f"xs_rank_{name}"] = (by_date.rank(method="average") - 0.5) / by_date.transform(
            "count"
        )
    return feats[warm].sort_index()[list(FEATURE_COLUMNS)]


def _timed(
    fns: dict[str, Callable[[], pd.DataFrame]], repeat: int
) -> dict[str, tuple[pd.DataFrame, list[float], list[float]]]:
    """Result, wall times and CPU times per function, the functions interleaved run by run.

    Interleaving spreads any change in the load of a shared machine over both sides; the CPU
    figure is the steadier one when other processes compete for the cores.
    """
    runs: dict[str, tuple[Any, list[float], list[float]]] = {k: (None, [], []) for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            _, walls, cpus = runs[name]
            walls.append(round(wall, 4))
            cpus.append(round(cpu, 4))
            runs[name] = (out, walls, cpus)
    return runs


def _peak_mb(fn: Callable[[], pd.DataFrame]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


T = TypeVar("T")


def on_one_core(fn: Callable[[], T]) -> T:
    """fn() with this process allowed one CPU only: mlplatform.parallel then runs one thread."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, allowed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    prices, source = make_prices(args.tickers, args.years, args.seed)
    print(f"prices: {len(prices):,} rows, {prices['ticker'].nunique()} tickers ({source})")
    print(f"cpu cores available: {cores()}")

    runs = _timed(
        {
            "vectorised": lambda: compute_features(prices),
            "one core": lambda: on_one_core(lambda: compute_features(prices)),
            "loop": lambda: loop_features(prices),
        },
        args.repeat,
    )
    fast, fast_times, fast_cpu = runs["vectorised"]
    single, single_times, _ = runs["one core"]
    slow, slow_times, slow_cpu = runs["loop"]
    pd.testing.assert_frame_equal(fast, single, check_exact=True)

    assert fast.index.equals(slow.index), "row sets differ"
    assert list(fast.columns) == list(slow.columns)
    np.testing.assert_allclose(
        fast.to_numpy(), slow.to_numpy(), rtol=1e-5, atol=1e-6, err_msg="outputs differ"
    )
    print(f"outputs equal at float32 tolerance: {fast.shape[0]:,} rows x {fast.shape[1]} cols")

    fast_peak = _peak_mb(lambda: compute_features(prices))
    slow_peak = _peak_mb(lambda: loop_features(prices))
    fast_s, slow_s = statistics.median(fast_times), statistics.median(slow_times)
    fast_c, slow_c = statistics.median(fast_cpu), statistics.median(slow_cpu)
    for label, wall, cpu, peak in (
        ("compute_features", fast_s, fast_c, fast_peak),
        ("per-ticker loop ", slow_s, slow_c, slow_peak),
    ):
        print(f"{label} : median {wall:7.3f} s wall, {cpu:7.3f} s cpu, peak {peak:7.1f} MiB")
    single_s = statistics.median(single_times)
    print(f"compute_features on one core: median {single_s:7.3f} s wall (identical output)")
    print(f"walls: {fast_times} vs one core {single_times} vs loop {slow_times}")
    print(f"speed-up         : {slow_s / fast_s:.1f}x wall, {slow_c / fast_c:.1f}x cpu")
    print(f"threads' gain    : {single_s / fast_s:.2f}x wall over one core")
    print(
        json.dumps(
            {
                "benchmark": "features",
                "source": source,
                "tickers": args.tickers,
                "years": args.years,
                "input_rows": len(prices),
                "output_rows": int(fast.shape[0]),
                "columns": int(fast.shape[1]),
                "repeat": args.repeat,
                "vectorised_s": round(fast_s, 4),
                "loop_s": round(slow_s, 4),
                "speedup": round(slow_s / fast_s, 2),
                "one_core_s": round(single_s, 4),
                "threads_speedup": round(single_s / fast_s, 2),
                "vectorised_cpu_s": round(fast_c, 4),
                "loop_cpu_s": round(slow_c, 4),
                "speedup_cpu": round(slow_c / fast_c, 2),
                "vectorised_peak_mib": round(fast_peak, 1),
                "loop_peak_mib": round(slow_peak, 1),
                "cores": cores(),
            }
        )
    )


if __name__ == "__main__":
    main()
