"""Helpers for the feature tests: small valid prices frames and a bit-exact causality check.

Kept local (not mlplatform.data.generate_market) so the feature tests control the awkward
shapes they need: tickers with different date ranges, gaps, flat bars, zero volume.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def make_prices(
    ranges: dict[str, tuple[int, int]] | None = None,
    *,
    n_dates: int = 300,
    seed: int = 0,
    gaps: dict[str, list[int]] | None = None,
) -> pd.DataFrame:
    """A long-format prices frame (contract order: ticker, date) of random-walk OHLCV bars.

    `ranges` maps ticker -> [first, last) business-day index; `gaps` drops bars by day index.
    """
    ranges = ranges or {"AAA": (0, 260), "BBB": (40, 300), "CCC": (150, 300), "DDD": (0, 200)}
    gaps = gaps if gaps is not None else {"BBB": [100, 101, 175], "AAA": [130]}
    rng = np.random.default_rng(seed)
    calendar = pd.bdate_range("2021-01-04", periods=n_dates)
    frames = []
    for ticker, (first, last) in sorted(ranges.items()):
        days = np.array([d for d in range(first, last) if d not in gaps.get(ticker, [])])
        n = len(days)
        close = rng.uniform(20, 200) * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0, 0.006, n))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
        volume = np.round(rng.lognormal(12, 0.6, n))
        frames.append(
            pd.DataFrame(
                {
                    "date": calendar[days],
                    "ticker": ticker,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def perturb_after(prices: pd.DataFrame, t: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Every bar after t replaced by a different valid bar (all five fields change)."""
    rng = np.random.default_rng(seed)
    out = prices.copy()
    later = out["date"] > t
    n = int(later.sum())
    scale = np.exp(rng.normal(0, 0.1, n))
    for col in ("open", "high", "low", "close"):
        out.loc[later, col] = out.loc[later, col].to_numpy() * scale
    out.loc[later, "close"] *= np.exp(rng.normal(0, 0.03, n))
    oc_max = out.loc[later, ["open", "close"]].max(axis=1).to_numpy()
    oc_min = out.loc[later, ["open", "close"]].min(axis=1).to_numpy()
    out.loc[later, "high"] = oc_max * (1 + rng.uniform(0.001, 0.05, n))
    out.loc[later, "low"] = oc_min * (1 - rng.uniform(0.001, 0.05, n))
    out.loc[later, "volume"] = np.round(rng.lognormal(10, 2, n))
    return out


def _bits(frame: pd.DataFrame) -> np.ndarray:
    """float32 bit patterns with one canonical NaN, so NaN positions compare too."""
    values = frame.to_numpy(dtype=np.float32)
    return np.where(np.isnan(values), np.float32(np.nan), values).view(np.uint32)


def assert_bit_identical_until(a: pd.DataFrame, b: pd.DataFrame, t: pd.Timestamp) -> None:
    """Rows of a and b dated <= t: same index, same columns, same bits in every column."""
    a_t = a[a.index.get_level_values("date") <= t]
    b_t = b[b.index.get_level_values("date") <= t]
    assert a_t.index.equals(b_t.index), f"row sets differ at or before {t.date()}"
    assert list(a_t.columns) == list(b_t.columns)
    bits_a, bits_b = _bits(a_t), _bits(b_t)
    for j, column in enumerate(a_t.columns):
        bad = np.flatnonzero(bits_a[:, j] != bits_b[:, j])
        assert bad.size == 0, (
            f"{column} leaks: {bad.size} value(s) at or before {t.date()} changed, first at "
            f"{a_t.index[bad[0]]}: {a_t.iloc[bad[0], j]!r} vs {b_t.iloc[bad[0], j]!r}"
        )


def assert_causal(
    features: Callable[[pd.DataFrame], pd.DataFrame], prices: pd.DataFrame, t: pd.Timestamp
) -> None:
    """Truncating after t, and changing every bar after t, leave all values <= t bit-identical."""
    full = features(prices)
    truncated = features(prices[prices["date"] <= t].reset_index(drop=True))
    perturbed = features(perturb_after(prices, t, seed=int(t.value % 2**31)))
    assert_bit_identical_until(full, truncated, t)
    assert_bit_identical_until(full, perturbed, t)
