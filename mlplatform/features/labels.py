"""Labels and forward returns: the only place that looks forward in time, on purpose.

Both are per ticker and by bar count: "t+h" is the h-th next bar of the same ticker, whatever the
calendar gap. Rows whose future bar does not exist yet are dropped, never filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.features.layout import PriceLayout


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    return int(horizon)


def _rows_with_future(layout: PriceLayout, bars_ahead: int) -> np.ndarray:
    """Canonical positions whose ticker has a bar `bars_ahead` later, in (date, ticker) order."""
    has = layout.pos + bars_ahead < layout.counts[layout.ticker_code]
    order = layout.date_order()
    return order[has[order]]


def make_labels(prices: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """int8 'label': 1 when close[t+h] / close[t] - 1 > 0, else 0 (a zero return is not up)."""
    h = _check_horizon(horizon)
    layout = PriceLayout.from_prices(prices)
    close = layout.column(prices, "close")
    rows = _rows_with_future(layout, h)
    up = close[rows + h] / close[rows] - 1.0 > 0.0
    return pd.Series(up.astype(np.int8), index=layout.multiindex(rows), name="label")


def forward_returns(prices: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """float64 'forward_return': close[t+h] / open[t+1] - 1.

    What a position decided at close t earns when it is entered at the next bar's open and
    closed at the close of the label's bar t+h: the tradable part of the move the label
    predicts. The backtest never trades at the close it decided on, and the overnight gap from
    close t to open t+1 is not earned, because no order could have been filled in it.
    """
    h = _check_horizon(horizon)
    layout = PriceLayout.from_prices(prices)
    open_ = layout.column(prices, "open")
    close = layout.column(prices, "close")
    rows = _rows_with_future(layout, h)
    ret = close[rows + h] / open_[rows + 1] - 1.0
    return pd.Series(ret, index=layout.multiindex(rows), name="forward_return", dtype=np.float64)


def hold_returns(prices: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """float64 'hold_return': close[t+h] / close[t] - 1, what a position held across the close
    earns (the buy-and-hold baseline); the same move the label's sign is taken from."""
    h = _check_horizon(horizon)
    layout = PriceLayout.from_prices(prices)
    close = layout.column(prices, "close")
    rows = _rows_with_future(layout, h)
    ret = close[rows + h] / close[rows] - 1.0
    return pd.Series(ret, index=layout.multiindex(rows), name="hold_return", dtype=np.float64)
