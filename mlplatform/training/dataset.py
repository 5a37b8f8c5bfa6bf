"""Which dates each stage may use, decided once per run and passed on as structured values.

The recipe (features, label, tuned hyperparameters) is evaluated by walk-forward over the most
recent `evaluation_months`, and the artifact that is registered is the same recipe refit on every
labelled row. So there are three kinds of dates:

- development: tuning only; it ends `horizon` dates before the evaluation window (purge), so no
  development label reaches into it, and tuning never sees the evaluation window.
- evaluation blocks of `refit_months` each: block k is predicted by a model trained on every
  labelled date up to `train_end`, which is `horizon` dates before the block starts (purge).
- the refit: every labelled date.

A date is "labelled" when close[t + horizon] exists; the calendar handed in holds only those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from mlplatform.features.layout import same_rows
from mlplatform.training.splits import SplitError, _calendar, _check_positive, _iso

RETURN_COLUMNS = ("forward_return", "hold_return")  # of features.labels.outcomes


@dataclass(frozen=True)
class DateWindow:
    start: date
    end: date

    def __str__(self) -> str:
        return f"{self.start.isoformat()} → {self.end.isoformat()}"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, value: dict[str, str]) -> DateWindow:
        return cls(date.fromisoformat(value["start"]), date.fromisoformat(value["end"]))

    def contains(self, dates: pd.Index) -> np.ndarray:
        days = pd.DatetimeIndex(dates)
        return np.asarray(
            (days >= pd.Timestamp(self.start)) & (days <= pd.Timestamp(self.end)), dtype=bool
        )


@dataclass(frozen=True)
class Block:
    """One walk-forward step: train on labelled dates up to `train_end`, predict `test`."""

    train_end: date
    test: DateWindow


@dataclass(frozen=True)
class Windows:
    horizon: int
    development: DateWindow
    evaluation: DateWindow
    blocks: tuple[Block, ...]
    refit: DateWindow  # every labelled date: what the registered model trains on


def _window(cal: pd.DatetimeIndex) -> DateWindow:
    return DateWindow(cal[0].date(), cal[-1].date())


def plan_windows(
    labelled_dates: pd.Index | np.ndarray | list,
    *,
    evaluation_months: int,
    refit_months: int,
    horizon: int,
) -> Windows:
    """Development, evaluation blocks and refit windows over the labelled calendar."""
    _check_positive("evaluation_months", evaluation_months, 1)
    _check_positive("refit_months", refit_months, 1)
    _check_positive("horizon", horizon, 1)
    if refit_months > evaluation_months:
        raise SplitError(
            "refit_months",
            f"{refit_months} is longer than the evaluation window ({evaluation_months} months)",
        )
    cal = _calendar(labelled_dates)
    if len(cal) == 0:
        raise SplitError("dates", "no labelled dates to split")
    cutoff = cal[-1] - pd.DateOffset(months=int(evaluation_months))
    start = int(cal.searchsorted(cutoff, side="right"))
    dev_end = start - int(horizon)
    if dev_end <= 0:
        raise SplitError(
            "evaluation_months",
            f"the {evaluation_months}-month evaluation window leaves no development dates "
            f"before it ({len(cal)} labelled dates, {_iso(cal[0])}..{_iso(cal[-1])})",
        )
    blocks: list[Block] = []
    block_start = start
    while block_start < len(cal):
        boundary = cal[block_start] + pd.DateOffset(months=int(refit_months))
        block_end = int(cal.searchsorted(boundary, side="left"))  # first date of the next block
        train_end = block_start - int(horizon) - 1
        blocks.append(Block(cal[train_end].date(), _window(cal[block_start:block_end])))
        block_start = block_end
    return Windows(
        horizon=int(horizon),
        development=_window(cal[:dev_end]),
        evaluation=_window(cal[start:]),
        blocks=tuple(blocks),
        refit=_window(cal),
    )


@dataclass(frozen=True)
class LabelledData:
    """Feature rows whose label is known, aligned with their labels (and, when built from
    `outcomes`, with the returns that followed each row).

    Rows sorted by date (what compute_features gives) make every window a contiguous range: it
    is taken as a slice (a view, no copy of a multi-GB matrix). Unsorted rows fall back to a
    boolean mask (a copy).
    """

    X: pd.DataFrame
    y: pd.Series
    returns: pd.DataFrame | None = None  # 'forward_return', 'hold_return' on X's index

    @cached_property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.X.index.get_level_values("date"))

    def _at(self, rows: slice | np.ndarray) -> LabelledData:
        """These `rows` (a slice, positions or a mask) of X, y and the returns, all three on the
        same index object (so checking that they are aligned costs nothing)."""
        X = self.X.iloc[rows]
        returns = None
        if self.returns is not None:
            returns = pd.DataFrame(
                {name: column.to_numpy()[rows] for name, column in self.returns.items()},
                index=X.index,
            )
        return LabelledData(
            X, pd.Series(self.y.to_numpy()[rows], X.index, name=self.y.name), returns
        )

    def _rows(self, first: pd.Timestamp | None, last: pd.Timestamp) -> LabelledData:
        dates = self.dates
        if dates.is_monotonic_increasing:
            start = 0 if first is None else int(dates.searchsorted(first, side="left"))
            stop = int(dates.searchsorted(last, side="right"))
            return self if (start, stop) == (0, len(dates)) else self._at(slice(start, stop))
        mask = np.asarray(dates <= last, dtype=bool)
        if first is not None:
            mask &= np.asarray(dates >= first, dtype=bool)
        return self._at(mask)

    def positions_until(self, last: date) -> np.ndarray:
        """Row positions dated at or before `last`."""
        return np.flatnonzero(self.dates <= pd.Timestamp(last))

    def take(self, positions: np.ndarray | None) -> LabelledData:
        """The rows at sorted `positions` (still date-sorted), or all of them for None."""
        return self if positions is None else self._at(positions)

    def within(self, window: DateWindow) -> LabelledData:
        return self._rows(pd.Timestamp(window.start), pd.Timestamp(window.end))

    def until(self, last: date) -> LabelledData:
        return self._rows(None, pd.Timestamp(last))

    def returns_of(self, name: str) -> pd.Series:
        """One column of the returns, on X's index."""
        if self.returns is None:
            raise ValueError(
                f"these labelled rows carry no returns ({name}): build them from outcomes"
            )
        return self.returns[name]

    def outcome_frame(self) -> pd.DataFrame:
        """The label and the returns as one frame on X's rows (what the labels asset stores):
        `labelled_rows` on the same features gives these rows back."""
        columns: dict[str, np.ndarray] = {"label": self.y.to_numpy()}
        if self.returns is not None:
            columns |= {name: self.returns[name].to_numpy() for name in RETURN_COLUMNS}
        return pd.DataFrame(columns, index=self.X.index)


def _label_positions(rows: pd.Index, labelled: pd.Index) -> np.ndarray:
    """Each row's position in `labelled`, -1 for none. The labels asset holds a leading run of
    the features' rows, which `same_rows` confirms without hashing every row."""
    n = len(labelled)
    if n <= len(rows) and same_rows(rows[:n], labelled):
        return np.concatenate([np.arange(n), np.full(len(rows) - n, -1)])
    return labelled.get_indexer(rows)


def labelled_rows(features: pd.DataFrame, outcomes: pd.DataFrame) -> LabelledData:
    """The rows that have both features and a known label, in the features' order, with their
    `outcomes` (features.labels.outcomes, the labels asset, or a frame of its 'label' alone).
    When the labelled rows are a leading run of the features (every ticker's last bars
    unlabelled on the same dates), X is a view."""
    carried = [name for name in RETURN_COLUMNS if name in outcomes.columns]
    if carried and len(carried) < len(RETURN_COLUMNS):
        raise ValueError(f"outcomes has {carried} but not all of {list(RETURN_COLUMNS)}")
    found = _label_positions(features.index, outcomes.index)  # -1: no label for that row
    mask = found >= 0
    n = int(mask.sum())
    if n == 0:
        raise SplitError("dates", "no row has both features and a known label")
    X = features.iloc[:n] if mask[:n].all() else features[mask]
    at = found[mask]
    y = pd.Series(outcomes["label"].to_numpy()[at], index=X.index, name="label")
    returns = None
    if carried:
        returns = pd.DataFrame(
            {name: outcomes[name].to_numpy()[at] for name in RETURN_COLUMNS}, index=X.index
        )
    return LabelledData(X, y, returns)
