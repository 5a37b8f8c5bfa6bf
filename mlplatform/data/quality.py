"""Data-quality measurements the Dagster asset checks report (pure, vectorised).

Business days here are Monday to Friday (numpy's default calendar); exchange holidays therefore
count as missing days, which is why the gap threshold tolerates a few.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlplatform import config
from mlplatform.data.schema import in_canonical_order


def _days(values: Any) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]")


def _previous_of_same_ticker(codes: np.ndarray) -> np.ndarray:
    """For rows sorted by ticker: whether the row before is a bar of the same ticker (a bar
    without a ticker, code -1, has none)."""
    return (codes[1:] == codes[:-1]) & (codes[1:] >= 0)


def staleness_business_days(prices: pd.DataFrame, as_of: Any) -> int:
    """Business days after the most recent bar up to and including `as_of`.

    0 when the latest bar is on as_of (or as_of is a weekend after Friday's bar); negative when
    the data run past as_of. Compare with config.STALE_AFTER_BUSINESS_DAYS.
    """
    if prices.empty:
        raise ValueError("no bars: staleness is undefined")
    last = np.datetime64(pd.Timestamp(prices["date"].max()).date(), "D")
    end = np.datetime64(pd.Timestamp(as_of).date(), "D")
    if end >= last:
        return int(np.busday_count(last + 1, end + 1))
    return -int(np.busday_count(end + 1, last + 1))


def _by_ticker_then_date(prices: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A frame whose `columns` are those of `prices` sorted by ticker then date: `prices` itself
    when it is (validated frames are; selecting the columns would copy them), else a sorted copy
    of those columns."""
    if in_canonical_order(prices):
        return prices
    return prices[columns].sort_values(["ticker", "date"], kind="mergesort")


def business_day_gaps(
    prices: pd.DataFrame, max_gap: int = config.MAX_GAP_BUSINESS_DAYS
) -> pd.DataFrame:
    """Consecutive bars of a ticker with more than `max_gap` business days missing between them.

    Columns: ticker, from (last bar before the gap), to (first bar after it), missing.
    """
    frame = _by_ticker_then_date(prices, ["ticker", "date"])
    codes, names = pd.factorize(frame["ticker"], sort=True)
    same = _previous_of_same_ticker(codes)
    days = _days(frame["date"].to_numpy())
    missing = np.busday_count(days[:-1] + 1, days[1:])
    hit = same & (missing > max_gap)
    idx = np.flatnonzero(hit)
    dates = frame["date"].to_numpy()
    return pd.DataFrame(
        {
            "ticker": np.asarray(names, dtype=object)[codes[idx]],
            "from": dates[idx],
            "to": dates[idx + 1],
            "missing": missing[idx].astype("int64"),
        }
    )


def extreme_returns(
    prices: pd.DataFrame, threshold: float = config.EXTREME_RETURN_ABS
) -> pd.DataFrame:
    """Close-to-close moves with |return| above `threshold` (a split not adjusted for, a typo).

    Columns: ticker, date, prev_close, close, return.
    """
    frame = _by_ticker_then_date(prices, ["ticker", "date", "close"])
    codes, names = pd.factorize(frame["ticker"], sort=True)
    close = frame["close"].to_numpy(dtype=np.float64)
    prev = np.full_like(close, np.nan)  # a ticker's first bar has no previous close
    same = _previous_of_same_ticker(codes)
    prev[1:][same] = close[:-1][same]
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = close / prev - 1.0
    hit = np.abs(ret) > threshold
    return pd.DataFrame(
        {
            "ticker": np.asarray(names, dtype=object)[codes[hit]],
            "date": frame["date"].to_numpy()[hit],
            "prev_close": prev[hit],
            "close": close[hit],
            "return": ret[hit],
        }
    )
