"""Aligns features with labels and cuts the held-out backtest window off, once, for every stage.

Tuning, training and the backtest all call `split_dataset` with the same settings, so the window
the backtest scores is by construction never seen by tuning or training.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlplatform.training.splits import holdout_split, rows_for


@dataclass(frozen=True)
class DevBacktestSplit:
    X_dev: pd.DataFrame
    y_dev: pd.Series
    X_backtest: pd.DataFrame
    y_backtest: pd.Series
    dev_dates: pd.DatetimeIndex
    backtest_dates: pd.DatetimeIndex

    @property
    def training_window(self) -> tuple[str, str]:
        return (self.dev_dates.min().date().isoformat(), self.dev_dates.max().date().isoformat())

    @property
    def backtest_window(self) -> tuple[str, str]:
        return (
            self.backtest_dates.min().date().isoformat(),
            self.backtest_dates.max().date().isoformat(),
        )


def split_dataset(
    features: pd.DataFrame, labels: pd.Series, *, backtest_months: int, horizon: int
) -> DevBacktestSplit:
    """Rows with both features and a known label, split by date into development and backtest."""
    index = features.index.intersection(labels.index)
    X = features.loc[index]
    y = labels.loc[index]
    dates = pd.DatetimeIndex(X.index.get_level_values("date").unique()).sort_values()
    dev_dates, backtest_dates = holdout_split(
        dates, backtest_months=backtest_months, horizon=horizon
    )
    dev_mask = rows_for(X.index, dev_dates)
    backtest_mask = rows_for(X.index, backtest_dates)
    return DevBacktestSplit(
        X_dev=X[dev_mask],
        y_dev=y[dev_mask],
        X_backtest=X[backtest_mask],
        y_backtest=y[backtest_mask],
        dev_dates=pd.DatetimeIndex(dev_dates),
        backtest_dates=pd.DatetimeIndex(backtest_dates),
    )
