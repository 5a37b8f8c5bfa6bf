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
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.features.layout import positions_of, row_keys
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

    def to_dict(self) -> dict[str, Any]:
        return {"train_end": self.train_end.isoformat(), "test": self.test.to_dict()}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Block:
        return cls(date.fromisoformat(value["train_end"]), DateWindow.from_dict(value["test"]))


@dataclass(frozen=True)
class Windows:
    horizon: int
    development: DateWindow
    evaluation: DateWindow
    blocks: tuple[Block, ...]
    refit: DateWindow  # every labelled date: what the registered model trains on

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "development": self.development.to_dict(),
            "evaluation": self.evaluation.to_dict(),
            "blocks": [b.to_dict() for b in self.blocks],
            "refit": self.refit.to_dict(),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Windows:
        return cls(
            horizon=int(value["horizon"]),
            development=DateWindow.from_dict(value["development"]),
            evaluation=DateWindow.from_dict(value["evaluation"]),
            blocks=tuple(Block.from_dict(b) for b in value["blocks"]),
            refit=DateWindow.from_dict(value["refit"]),
        )


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
    is taken as a slice (a view, no copy of a multi-GB matrix), with y on the same index object
    so aligning them costs nothing. Unsorted rows fall back to a boolean mask (a copy).
    """

    X: pd.DataFrame
    y: pd.Series
    returns: pd.DataFrame | None = None  # 'forward_return', 'hold_return' on X's index

    @cached_property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.X.index.get_level_values("date"))

    def _at(self, X: pd.DataFrame, rows: slice | np.ndarray) -> LabelledData:
        """These `rows` (a slice or positions) of y and the returns, on `X`, the same rows of X."""
        returns = None
        if self.returns is not None:
            returns = pd.DataFrame(
                {name: column.to_numpy()[rows] for name, column in self.returns.items()},
                index=X.index,
                copy=False,  # fresh columns: pandas' default copies a dict's arrays again
            )
        return LabelledData(
            X, pd.Series(self.y.to_numpy()[rows], X.index, name=self.y.name), returns
        )

    @cached_property
    def _sorted_date_codes(self) -> tuple[pd.Index, np.ndarray] | None:
        """The sorted date level and each row's code into it, when the rows are sorted by date:
        a window's rows are then found on the codes, with no timestamp per row materialised
        (40 MB at 5 M rows, in every step that cuts a window); else None."""
        index = self.X.index
        if not isinstance(index, pd.MultiIndex) or "date" not in index.names:
            return None
        i = index.names.index("date")
        level, codes = index.levels[i], index.codes[i]
        if not level.is_monotonic_increasing or not bool((codes[1:] >= codes[:-1]).all()):
            return None
        if len(codes) and codes[0] < 0:  # a missing date sorts first in the codes
            return None
        return level, codes

    def _leading(self, bound: pd.Timestamp, *, through: bool) -> int:
        """How many leading rows are dated before `bound` (or on it too, `through`); for rows
        sorted by date."""
        level, codes = self._sorted_date_codes  # type: ignore[misc]
        code = level.searchsorted(bound, side="right" if through else "left")
        if code > np.iinfo(codes.dtype).max:  # past every code (a level longer than its codes)
            return len(codes)
        # searched as the codes' own type: an int64 key would convert all the codes (8 ms a call)
        return int(np.searchsorted(codes, codes.dtype.type(code), side="left"))

    def _span(self, first: pd.Timestamp | None, last: pd.Timestamp) -> tuple[int, int] | None:
        """The rows dated from `first` (None: the first row) through `last` as a range of
        positions, when the rows are sorted by date; else None."""
        if self._sorted_date_codes is not None:
            start = 0 if first is None else self._leading(first, through=False)
            return start, self._leading(last, through=True)
        dates = self.dates  # sorted rows whose date level is not: one timestamp per row
        if dates.is_monotonic_increasing:
            start = 0 if first is None else int(dates.searchsorted(first, side="left"))
            return start, int(dates.searchsorted(last, side="right"))
        return None

    def _rows(self, first: pd.Timestamp | None, last: pd.Timestamp) -> LabelledData:
        span = self._span(first, last)
        if span is not None:
            start, stop = span
            if start == 0 and stop == len(self.X):
                return self
            return self._at(self.X.iloc[start:stop], slice(start, stop))
        dates = self.dates
        mask = np.asarray(dates <= last, dtype=bool)
        if first is not None:
            mask &= np.asarray(dates >= first, dtype=bool)
        return self._at(self.X[mask], mask)

    def positions_until(self, last: date) -> np.ndarray:
        """Row positions dated at or before `last`."""
        span = self._span(None, pd.Timestamp(last))
        if span is not None:
            return np.arange(span[1])
        return np.flatnonzero(self.dates <= pd.Timestamp(last))

    def take(self, positions: np.ndarray | None) -> LabelledData:
        """The rows at sorted `positions` (still date-sorted), or all of them for None."""
        if positions is None:
            return self
        return self._at(self.X.iloc[positions], positions)

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
        `labelled_rows` on the same features gives these rows back by position."""
        columns: dict[str, np.ndarray] = {"label": self.y.to_numpy()}
        if self.returns is not None:
            columns |= {name: self.returns[name].to_numpy() for name in RETURN_COLUMNS}
        return pd.DataFrame(columns, index=self.X.index, copy=False)


def _leading_rows(features: pd.DataFrame, outcomes: pd.DataFrame) -> bool:
    """Whether the outcome rows are the features' first rows in the same order, as the labels
    asset stores them: then they are matched by position, with no key table."""
    own, theirs = features.index, outcomes.index
    if len(theirs) > len(own) or own.nlevels != theirs.nlevels:
        return False
    n = len(theirs)
    return all(
        mine.equals(level) and np.array_equal(mine_codes[:n], codes)
        for mine, level, mine_codes, codes in zip(
            own.levels, theirs.levels, own.codes, theirs.codes, strict=True
        )
    )


def labelled_rows(features: pd.DataFrame, outcomes: pd.DataFrame) -> LabelledData:
    """The rows that have both features and a known label, in the features' order, with their
    `outcomes` (features.labels.outcomes, the labels asset, or a frame of its 'label' alone).

    Outcomes whose rows are the features' leading rows (the labels asset, on a shared calendar)
    are matched by position. Any others are matched on integer keys built from the index codes
    (a lookup table over the date x ticker grid) rather than `MultiIndex.intersection`, which
    materialises tuples and costs seconds and GBs at millions of rows. When the labelled rows
    are a leading run of the features (every ticker's last bars unlabelled on the same dates),
    X is a view.
    """
    carried = [name for name in RETURN_COLUMNS if name in outcomes.columns]
    if carried and len(carried) < len(RETURN_COLUMNS):
        raise ValueError(f"outcomes has {carried} but not all of {list(RETURN_COLUMNS)}")
    at: slice | np.ndarray
    if len(outcomes) and _leading_rows(features, outcomes):
        X, at = features.iloc[: len(outcomes)], slice(None)
    else:
        levels = [outcomes.index.levels[i] for i in range(outcomes.index.nlevels)]
        grid = int(np.prod([len(level) for level in levels]))
        found = positions_of(
            row_keys(features.index, levels), row_keys(outcomes.index, levels), grid
        )
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
            {name: outcomes[name].to_numpy()[at] for name in RETURN_COLUMNS},
            index=X.index,
            copy=False,  # fresh columns: pandas' default copies a dict's arrays again
        )
    return LabelledData(X, y, returns)
