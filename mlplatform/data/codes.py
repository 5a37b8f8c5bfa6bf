"""Integer codes of a key column (ticker, date) in sorted order: `pd.factorize(sort=True)`.

A validated prices frame holds its tickers as a categorical with sorted categories, which
pandas factorizes from the codes it already has; text keys are hashed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def factorize_sorted(values: pd.Series | pd.Index | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, sorted distinct values), -1 for missing ones: the raw_prices asset's tickers."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes, np.asarray(uniques)


def level_codes(index: pd.MultiIndex, name: str) -> tuple[np.ndarray, pd.Index]:
    """`pd.factorize` (sorted) of one level's values, row by row (the tuning folds' tickers)."""
    codes, uniques = pd.factorize(index.get_level_values(name), sort=True)
    return codes, pd.Index(uniques)
