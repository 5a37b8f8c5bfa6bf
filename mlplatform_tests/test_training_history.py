"""Windows fitted to the history a user has: configured when it allows, shortened with the
reason when it is short, a clear refusal below the minimum."""

from __future__ import annotations

import pandas as pd
import pytest

from mlplatform.training import SplitError
from mlplatform.training.history import fit_windows

DEFAULTS = {"evaluation_months": 36, "refit_months": 3, "horizon": 1, "n_folds": 4,
            "min_train_days": 252}  # fmt: skip


def _dates(years: float) -> pd.DatetimeIndex:
    return pd.bdate_range(end="2018-12-31", periods=int(252 * years))


def test_a_decade_keeps_the_configured_windows() -> None:
    fitted = fit_windows(_dates(10), **DEFAULTS)
    assert (fitted.evaluation_months, fitted.min_train_days, fitted.notes) == (36, 252, ())
    assert fitted.describe() == "as configured"


def test_four_years_of_index_bars_get_a_shorter_evaluation_window_and_say_why() -> None:
    """The reported case: 2015-2018 failed with 185 development dates for min_train_days=252."""
    fitted = fit_windows(_dates(4), **DEFAULTS)
    assert fitted.evaluation_months == 23 and fitted.min_train_days == 252
    assert "evaluation window 23 months, not 36" in fitted.describe()
    assert fitted.windows.evaluation.end.isoformat() == "2018-12-31"


def test_a_year_shortens_the_first_tuning_fold_too() -> None:
    fitted = fit_windows(_dates(1), **DEFAULTS)
    assert fitted.evaluation_months == 5 and fitted.min_train_days < 252
    assert "first tuning fold trains on" in fitted.describe()


def test_below_the_minimum_says_how_much_is_needed_and_how_much_there_is() -> None:
    with pytest.raises(SplitError, match=r"100 labelled business days .* at least 147 are needed"):
        fit_windows(_dates(100 / 252), **DEFAULTS)
