"""Integer codes of a key column (ticker, date) in sorted order: `pd.factorize(sort=True)`.

A validated prices frame holds its tickers as a categorical with sorted categories, which
pandas factorizes from the codes it already has; text keys are hashed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def level_codes(index: pd.MultiIndex, name: str) -> tuple[np.ndarray, pd.Index]:
    """`pd.factorize` (sorted) of one level's values, row by row (the tuning folds' tickers)."""
    codes, uniques = pd.factorize(index.get_level_values(name), sort=True)
    return codes, pd.Index(uniques)
