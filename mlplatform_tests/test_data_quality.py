"""fingerprint and the quality helpers the Dagster asset checks call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlplatform import config
from mlplatform.data import (
    PRICES_SCHEMA,
    business_day_gaps,
    extreme_returns,
    fingerprint,
    generate_market,
    staleness_business_days,
)
from mlplatform.data.codes import factorize_sorted
from mlplatform.orchestration.assets.data import PricesFrame


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return generate_market(seed=2, n_tickers=3, years=1, as_of="2024-06-28").prices  # a Friday


def test_fingerprint_ignores_row_and_column_order(prices: pd.DataFrame) -> None:
    base = fingerprint(prices)
    assert len(base) == 64 and int(base, 16) >= 0
    shuffled = prices.sample(frac=1.0, random_state=0)[list(reversed(prices.columns))]
    assert fingerprint(shuffled) == base
    assert fingerprint(prices.assign(extra=1)) == base


def test_fingerprint_bytes_stay_those_of_format_v1(prices: pd.DataFrame) -> None:
    """Study names and model versions carry the digest: the fast path for sorted str tickers
    and the general path (sorting, non-str tickers) hash exactly what v1 always hashed."""
    v1 = "f2e400a925430ee24299a6daba26f135c5397a834c335133d8f40e69d5a84e45"
    assert fingerprint(prices) == v1
    assert fingerprint(prices.sample(frac=1.0, random_state=1)) == v1
    assert fingerprint(prices.assign(ticker=prices["ticker"].astype("category"))) == v1
    numbered = prices.assign(ticker=prices["ticker"].str[1:].astype(int))
    assert (
        fingerprint(numbered) == "dd804a49a00ccd56abce49e455674aaa925ac2e26f5305d3be3a959cba8861af"
    )


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


def _same_factorization(values: np.ndarray) -> None:
    codes, uniques = factorize_sorted(values)
    expected_codes, expected_uniques = pd.factorize(values, sort=True)
    np.testing.assert_array_equal(codes, expected_codes)
    assert list(uniques) == list(expected_uniques)


@given(st.lists(st.sampled_from(["AAPL", "MSFT", "T0001", "T0002", "X", None]), max_size=40))
def test_factorize_sorted_is_pandas_factorize(tickers: list[str]) -> None:
    _same_factorization(np.array(tickers, dtype=object))  # any order, repeats, splits, None
    named = sorted(t for t in tickers if t is not None)
    _same_factorization(np.array(named, dtype=object))  # the runs of a prices frame


@pytest.mark.parametrize(
    "values",
    [
        np.array(["A", None, "B"], dtype=object),
        np.array([None], dtype=object),
        np.array([None, None], dtype=object),  # None == None: one run, but missing
        np.array([np.nan], dtype=object),
        np.array(["NaT"], dtype="datetime64[ns]"),
        np.array(["A", pd.NA, "B"], dtype=object),  # pd.NA does not compare
        np.array(["A", np.nan, "A", "B"], dtype=object),
        np.array(["A", "A", 1], dtype=object),  # types that do not compare
        np.array(["B", "B", "A"], dtype=object),  # runs, but descending
        np.array(["2024-01-02", "NaT", "2024-01-01"], dtype="datetime64[ns]"),
        np.array([], dtype=object),
    ],
)
def test_factorize_sorted_follows_pandas_on_missing_and_odd_values(values: np.ndarray) -> None:
    _same_factorization(values)


def test_quality_checks_do_not_depend_on_row_order(prices: pd.DataFrame) -> None:
    """Validated frames take the no-sort path; any other order gives the same findings."""
    holed = prices.drop(index=prices.index[40:52]).reset_index(drop=True)
    holed.loc[100, "close"] *= 3.0
    shuffled = holed.sample(frac=1.0, random_state=1)
    gaps, extremes = business_day_gaps(holed, max_gap=3), extreme_returns(holed)
    assert len(gaps) == 1 and len(extremes) == 2
    pd.testing.assert_frame_equal(business_day_gaps(shuffled, max_gap=3), gaps)
    pd.testing.assert_frame_equal(extreme_returns(shuffled), extremes)


def test_the_type_check_reads_the_frame_without_changing_it(prices: pd.DataFrame) -> None:
    bad = prices.copy()
    bad.loc[5, "high"] = 0.0
    bad.loc[7, "date"] = pd.Timestamp("2024-01-02 10:00")
    before = bad.copy()
    check = PricesFrame.type_check(None, bad)  # what Dagster runs on every materialization
    assert not check.success
    assert "Column 'high' failed" in check.description and "normalised" in check.description
    pd.testing.assert_frame_equal(bad, before, check_exact=True)
    assert PricesFrame.type_check(None, prices).success
    # no copy: the schema validates in place, which is safe only while it neither coerces
    # dtypes nor adds or drops columns
    assert PRICES_SCHEMA.validate(prices) is prices
    assert PRICES_SCHEMA.coerce is False and PRICES_SCHEMA.strict is True
    unsorted = prices.iloc[::-1]
    with pytest.raises(Exception, match="sorted_unique"):
        PRICES_SCHEMA.validate(unsorted)
