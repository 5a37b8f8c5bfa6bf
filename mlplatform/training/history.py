"""Windows that fit the history a user has: a short history is judged, not crashed.

The configured evaluation window (36 months) and tuning's first training fold (252 days) suit a
decade of bars. A user with four years would otherwise fail before any verdict. So the
evaluation window takes at most half of the labelled history (whole months, at least one refit
block), and when the development dates left before it are too few for tuning's folds, the first
fold trains on fewer days, down to a floor. The promotion gate's statistics then decide: with
little history they lack the power to pass, and the version is refused for lack of evidence.
Below the floor, the history is too short to evaluate anything, and the error says how much is
needed and how much there is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplatform.training.dataset import Windows, plan_windows
from mlplatform.training.splits import MIN_TEST_DAYS, SplitError

MIN_TRAIN_DAYS_FLOOR = 63  # a quarter of business days: the shortest first tuning fold
DAYS_PER_MONTH = 21


@dataclass(frozen=True)
class FittedWindows:
    """The windows of one run, and how they differ from the configured ones (and why)."""

    windows: Windows
    evaluation_months: int
    min_train_days: int
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        return "; ".join(self.notes) if self.notes else "as configured"


def fit_windows(
    labelled_dates: pd.Index | np.ndarray | list,
    *,
    evaluation_months: int,
    refit_months: int,
    horizon: int,
    n_folds: int,
    min_train_days: int,
) -> FittedWindows:
    """The configured windows when the history allows them, else shortened (see the module)."""
    dates = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(labelled_dates))).sort_values()
    needed = (
        MIN_TRAIN_DAYS_FLOOR + horizon + n_folds * MIN_TEST_DAYS + refit_months * DAYS_PER_MONTH
    )
    span = (
        "no labelled dates" if len(dates) == 0 else f"{dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}"
    )
    if len(dates) < needed:
        raise SplitError(
            "history",
            f"the history is too short to evaluate a model: {len(dates)} labelled business days "
            f"({span}); at least {needed} are needed (about {needed / 252:.1f} years: "
            f"{MIN_TRAIN_DAYS_FLOOR} to train the first tuning fold, {n_folds} test blocks of "
            f"{MIN_TEST_DAYS}, and one {refit_months}-month evaluation block)",
        )
    notes = []
    history_months = (dates[-1].year - dates[0].year) * 12 + dates[-1].month - dates[0].month
    fitted_months = min(evaluation_months, max(refit_months, history_months // 2))
    if fitted_months < evaluation_months:
        notes.append(
            f"evaluation window {fitted_months} months, not {evaluation_months}: the history "
            f"holds {history_months} months and the evaluation takes at most half"
        )
    windows = plan_windows(
        dates, evaluation_months=fitted_months, refit_months=refit_months, horizon=horizon
    )
    development = int(np.count_nonzero(dates <= pd.Timestamp(windows.development.end)))
    train_days = min(min_train_days, development - horizon - n_folds * MIN_TEST_DAYS)
    if train_days < MIN_TRAIN_DAYS_FLOOR:  # only when half the history leaves too little
        raise SplitError(
            "history",
            f"{development} development dates before a {fitted_months}-month evaluation window "
            f"are too few for {n_folds} tuning folds ({span})",
        )
    if train_days < min_train_days:
        notes.append(
            f"first tuning fold trains on {train_days} days, not {min_train_days}: the "
            f"development window holds {development}"
        )
    return FittedWindows(windows, fitted_months, train_days, tuple(notes))
