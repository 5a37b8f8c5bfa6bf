"""Labels and the returns after each bar: the only place that looks forward in time, on purpose.

All are per ticker and by bar count: "t+h" is the h-th next bar of the same ticker, whatever the
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
    has = layout.pos < layout.counts[layout.ticker_code] - bars_ahead
    order = layout.date_order()
    return order[has[order]]


def outcomes(prices: pd.DataFrame, horizon: int = 1) -> pd.DataFrame:
    """What happened after each bar that has a bar `horizon` later, by (date, ticker):

    - 'label' (int8): 1 when close[t+h] / close[t] - 1 > 0, else 0 (a zero return is not up);
    - 'hold_return': close[t+h] / close[t] - 1, what a position held across the close earns (the
      buy-and-hold baseline), the move the label's sign is taken from;
    - 'forward_return': close[t+h] / open[t+1] - 1, what a position decided at close t earns
      when it is entered at the next bar's open and closed at the close of the label's bar: the
      tradable part of the move the label predicts. The backtest never trades at the close it
      decided on, and the overnight gap from close t to open t+1 is not earned, because no order
      could have been filled in it.

    One layout for the three: training needs the label and tuning and the backtest the returns of
    the same rows, so they are derived together, once per retrain (the labels asset).
    """
    h = _check_horizon(horizon)
    layout = PriceLayout.from_prices(prices)
    open_ = layout.column(prices, "open")
    close = layout.column(prices, "close")
    rows = _rows_with_future(layout, h)
    later = close[rows + h]
    hold = later / close[rows] - 1.0
    forward = later / open_[rows + 1] - 1.0
    return pd.DataFrame(
        {
            "label": (hold > 0.0).astype(np.int8),
            "forward_return": forward,
            "hold_return": hold,
        },
        index=layout.multiindex(rows),
    )


def make_labels(prices: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """The int8 'label' of `outcomes` alone."""
    return outcomes(prices, horizon)["label"]
