"""Date-based splits: the held-out backtest window and purged, embargoed walk-forward folds.

Every split is by *date* across all tickers at once (never by row), so no two rows of the same day
ever sit on both sides of a boundary. Positions below are positions in the sorted calendar of
unique dates handed in; the label of date t with horizon h looks at the bar h calendar positions
later (close[t+h]), so its *label window* is the closed interval [t, t+h].

Purge (López de Prado): a training date t is dropped when its label window [t, t+h] overlaps the
test (or backtest) block [s, e]. Because training dates here always precede the block, that is
exactly the last h dates before s: pos(t) + h >= pos(s). Sharing the end point counts as overlap.

Embargo (DESIGN.md: "drop a margin after each test block"): in fold k the first `embargo_days`
dates after the end of every *earlier* test block j < k are dropped from fold k's training set.
Those dates' features are computed from rolling windows that cover test block j, and their
returns are serially correlated with block j's; dropping them keeps every fold's training set free
of the margin after any block that was scored. With an expanding, forward-only walk-forward the
current test block k is always after all of its training dates, so nothing after block k needs an
embargo. The leakage that matters (a label peeking into the block being scored) is removed by the
purge.

Caveat: the calendar is the union of dates over all tickers. If a ticker skips a date, its own
t+h bar can lie later than calendar position t+h; validated data (config.MAX_GAP_BUSINESS_DAYS)
keeps such gaps rare, and a horizon-sized purge still covers a single missing bar for h >= 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_TEST_DAYS = 5  # a test block shorter than a trading week gives a meaningless fold score


class SplitError(ValueError):
    """The history is too short (or the settings inconsistent) for the requested split.

    `field` names the configuration field to change, e.g. "n_folds" or "evaluation_months".
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: purged + embargoed training dates strictly before the test block."""

    train_dates: pd.DatetimeIndex
    test_dates: pd.DatetimeIndex

    def describe(self) -> dict[str, str | int]:
        """JSON-safe summary for logs and metadata."""
        return {
            "train_start": _iso(self.train_dates.min()),
            "train_end": _iso(self.train_dates.max()),
            "n_train_dates": len(self.train_dates),
            "test_start": _iso(self.test_dates.min()),
            "test_end": _iso(self.test_dates.max()),
            "n_test_dates": len(self.test_dates),
        }


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).date().isoformat()


def _calendar(dates: pd.Index | np.ndarray | list) -> pd.DatetimeIndex:
    """Unique, sorted, tz-naive dates."""
    cal = pd.DatetimeIndex(dates).unique().sort_values()
    if cal.hasnans:
        raise SplitError("dates", "contains NaT")
    return cal


def _check_positive(field: str, value: int, minimum: int) -> None:
    if int(value) != value or value < minimum:
        raise SplitError(field, f"must be an integer >= {minimum}, got {value!r}")


def walk_forward_folds(
    dev_dates: pd.Index | np.ndarray | list,
    *,
    n_folds: int,
    horizon: int,
    embargo_days: int,
    min_train_days: int,
    min_test_days: int = MIN_TEST_DAYS,
) -> list[Fold]:
    """Expanding-window walk-forward folds over the development dates.

    Layout: the first test block starts at position `min_train_days + horizon`, so that the first
    fold trains on exactly `min_train_days` dates after the purge; the remaining dates are cut
    into `n_folds` contiguous test blocks of (almost) equal size, which cover the rest of the
    calendar. Fold k trains on every date before block k, minus the purge (the last `horizon`
    dates before block k) and the embargo (the first `embargo_days` dates after each block j < k).
    See the module docstring for why.
    """
    _check_positive("n_folds", n_folds, 1)
    _check_positive("horizon", horizon, 1)
    _check_positive("embargo_days", embargo_days, 0)
    _check_positive("min_train_days", min_train_days, 1)
    _check_positive("min_test_days", min_test_days, 1)
    cal = _calendar(dev_dates)
    n = len(cal)
    first_test = int(min_train_days) + int(horizon)
    needed = first_test + int(n_folds) * int(min_test_days)
    if n < needed:
        field = "n_folds" if n >= first_test + min_test_days else "min_train_days"
        raise SplitError(
            field,
            f"{n} development dates are too few for min_train_days={min_train_days} + "
            f"horizon={horizon} + n_folds={n_folds} test blocks of at least {min_test_days} "
            f"dates (need {needed})",
        )
    blocks = np.array_split(np.arange(first_test, n), int(n_folds))
    folds: list[Fold] = []
    keep = np.ones(n, dtype=bool)  # dates still eligible for training (embargo removes some)
    for block in blocks:
        start, end = int(block[0]), int(block[-1])
        train_mask = keep.copy()
        train_mask[max(start - int(horizon), 0) :] = False  # purge + everything from the block on
        folds.append(Fold(train_dates=cal[train_mask], test_dates=cal[start : end + 1]))
        keep[end + 1 : end + 1 + int(embargo_days)] = False  # embargo after this block
    return folds


def rows_for(index: pd.Index, dates: pd.Index | np.ndarray | list) -> np.ndarray:
    """Boolean mask of the rows of a (date, ticker) MultiIndex (or a DatetimeIndex) on `dates`.

    On a MultiIndex the test runs once per distinct date (its level) and reaches the rows through
    the level codes, instead of materialising and hashing every row's date.
    """
    wanted = pd.DatetimeIndex(dates)
    if not isinstance(index, pd.MultiIndex):
        return np.asarray(pd.DatetimeIndex(index).isin(wanted), dtype=bool)
    level = index.names.index("date")
    codes = index.codes[level]
    on_level = np.append(pd.DatetimeIndex(index.levels[level]).isin(wanted), False)
    return on_level[codes]  # code -1 (a missing date) reads the appended False
