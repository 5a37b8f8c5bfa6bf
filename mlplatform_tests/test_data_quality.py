"""fingerprint and the quality helpers the Dagster asset checks call."""

from __future__ import annotations

import pandas as pd
import pytest

from mlplatform import config
from mlplatform.data import (
    business_day_gaps,
    extreme_returns,
    fingerprint,
    generate_market,
    staleness_business_days,
)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return generate_market(seed=2, n_tickers=3, years=1, as_of="2024-06-28").prices  # a Friday


def test_fingerprint_ignores_row_and_column_order(prices: pd.DataFrame) -> None:
    base = fingerprint(prices)
    assert len(base) == 64 and int(base, 16) >= 0
    shuffled = prices.sample(frac=1.0, random_state=0)[list(reversed(prices.columns))]
    assert fingerprint(shuffled) == base
    assert fingerprint(prices.assign(extra=1)) == base


def test_fingerprint_sees_every_change(prices: pd.DataFrame) -> None:
    base = fingerprint(prices)
    changed = prices.copy()
    changed.loc[10, "volume"] += 1
    assert fingerprint(changed) != base
    assert fingerprint(prices.iloc[:-1]) != base
    renamed = prices.assign(ticker=prices["ticker"].str.lower())
    assert fingerprint(renamed) != base


def test_staleness(prices: pd.DataFrame) -> None:
    assert staleness_business_days(prices, "2024-06-28") == 0
    assert staleness_business_days(prices, "2024-06-30") == 0  # Sunday after Friday's bar
    assert staleness_business_days(prices, "2024-07-01") == 1
    assert staleness_business_days(prices, "2024-07-08") == 6
    assert staleness_business_days(prices, "2024-06-27") == -1


def test_business_day_gaps(prices: pd.DataFrame) -> None:
    assert business_day_gaps(prices).empty
    holed = prices[
        ~((prices["ticker"] == "T0002") & prices["date"].between("2024-03-04", "2024-03-13"))
    ]
    gaps = business_day_gaps(holed, max_gap=config.MAX_GAP_BUSINESS_DAYS)
    assert gaps.to_dict("records") == [
        {
            "ticker": "T0002",
            "from": pd.Timestamp("2024-03-01"),
            "to": pd.Timestamp("2024-03-14"),
            "missing": 8,
        }
    ]
    assert business_day_gaps(holed, max_gap=8).empty


def test_extreme_returns(prices: pd.DataFrame) -> None:
    assert extreme_returns(prices).empty
    spiked = prices.copy()
    row = spiked.index[(spiked["ticker"] == "T0000") & (spiked["date"] == "2024-05-15")][0]
    spiked.loc[row, "close"] *= 3.0
    out = extreme_returns(spiked, threshold=config.EXTREME_RETURN_ABS)
    assert out["date"].tolist() == [pd.Timestamp("2024-05-15"), pd.Timestamp("2024-05-16")]
    assert out["ticker"].unique().tolist() == ["T0000"]
    assert out["return"].iloc[0] > 1.9 and out["return"].iloc[1] < -0.6
