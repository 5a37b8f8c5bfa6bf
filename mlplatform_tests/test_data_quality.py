"""fingerprint and the quality helpers the Dagster asset checks call."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from mlplatform import config
from mlplatform.data import (
    PRICES_SCHEMA,
    business_day_gaps,
    extreme_returns,
    fingerprint,
    generate_market,
    staleness_business_days,
)
from mlplatform.orchestration.assets.data import PricesFrame
from mlplatform_tests.test_data_loader import bars


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return generate_market(seed=2, n_tickers=3, years=1, as_of="2024-06-28").prices  # a Friday


def test_fingerprint_ignores_row_and_column_order(prices: pd.DataFrame) -> None:
    base = fingerprint(prices)
    assert len(base) == 64 and int(base, 16) >= 0
    shuffled = prices.sample(frac=1.0, random_state=0)[list(reversed(prices.columns))]
    assert fingerprint(shuffled) == base
    assert fingerprint(prices.assign(extra=1)) == base


def _v1_bars() -> pd.DataFrame:
    """Bars built by hand, so the pinned digests below depend on nothing but the fingerprint (a
    generated market can change with the installed packages, as it did for this test)."""
    frames = []
    for j, ticker in enumerate(["AAA2", "BB10", "T0003"]):
        frame = bars(ticker, n=30, start="2024-01-01")
        frame[["open", "high", "low", "close", "volume"]] *= 1.0 + 0.5 * j  # each its own values
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[3, "open"] = -0.0  # folded into 0.0 by v1
    return frame


def _v1_digest(frame: pd.DataFrame) -> str:
    """Format v1 written out byte by byte from its definition (rows in ticker, date order)."""
    digest = hashlib.sha256(b"mlplatform.prices.v1\0date,ticker,open,high,low,close,volume\0")
    digest.update(np.int64(len(frame)).tobytes())
    digest.update(frame["date"].to_numpy("datetime64[ns]").astype("<i8").tobytes())
    digest.update("\n".join(map(str, frame["ticker"])).encode("utf-8") + b"\0")
    for column in ["open", "high", "low", "close", "volume"]:
        digest.update((frame[column].to_numpy("float64") + 0.0).astype("<f8").tobytes())
    return digest.hexdigest()


def test_fingerprint_bytes_stay_those_of_format_v1() -> None:
    """Study names and model versions carry the digest: the fast path for sorted str tickers
    and the general path (sorting, non-str tickers) hash exactly what v1 always hashed."""
    frame = _v1_bars()
    v1 = "1895e4aaef9966880bfe99abdbb1742059fa3daf409c1ffaff489f6a63136e32"
    assert _v1_digest(frame) == v1
    assert fingerprint(frame) == v1
    assert fingerprint(frame.sample(frac=1.0, random_state=1)) == v1
    assert fingerprint(frame.assign(ticker=frame["ticker"].astype("category"))) == v1
    # v1 sorts tickers as text: integer tickers 2, 10, 3 hash in the order 10, 2, 3
    numbered = frame.assign(ticker=frame["ticker"].str.extract(r"(\d+)$")[0].astype(int))
    as_text = numbered.assign(text=numbered["ticker"].astype(str))
    in_order = as_text.sort_values(["text", "date"], kind="stable").drop(columns="text")
    assert in_order["ticker"].unique().tolist() == [10, 2, 3]
    assert (
        fingerprint(numbered)
        == _v1_digest(in_order)
        == ("ae31a7330fe159e40bc23075f2694e0bf85df7da22756db67d089f9d8098eb83")
    )


def test_fingerprint_until_a_date_is_that_of_the_bars_up_to_it(prices: pd.DataFrame) -> None:
    """A study's development bars are fingerprinted in place: the same digest as the filtered
    frame's, in the fast path (sorted str tickers) and the general one, for a cut inside the bars,
    before them all and after them all."""
    shuffled = prices.sample(frac=1.0, random_state=2)
    numbered = prices.assign(ticker=prices["ticker"].str[1:].astype(int))  # the general path
    assert numbered["ticker"].nunique() == prices["ticker"].nunique() > 1
    first, last = prices["date"].min(), prices["date"].max()
    middle = prices["date"].sort_values().iloc[len(prices) // 2]
    cuts = [middle, first - pd.Timedelta(days=1), last, last + pd.Timedelta(days=1)]
    for frame in (prices, shuffled, numbered):
        for cut in cuts:
            expected = fingerprint(frame[frame["date"] <= cut])
            assert fingerprint(frame, until=cut) == expected
    assert fingerprint(prices, until=middle) != fingerprint(prices)
    assert fingerprint(prices, until=last) == fingerprint(prices)
    # zoned dates: the cut is an instant, compared in the dates' zone, as the filter compares it
    zoned = prices.assign(date=prices["date"].dt.tz_localize("America/New_York"))
    cut = (middle + pd.Timedelta(hours=2)).tz_localize("Europe/Berlin")  # 20:00 the day before
    assert fingerprint(zoned, until=cut) == fingerprint(zoned[zoned["date"] <= cut])
    assert fingerprint(zoned, until=cut) != fingerprint(
        zoned[zoned["date"] <= middle.tz_localize("America/New_York")]
    )
    with pytest.raises(TypeError, match="cannot compare"):
        fingerprint(zoned, until=middle)
    with pytest.raises(TypeError, match="cannot compare"):
        fingerprint(prices, until=cut)


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


def test_quality_reports_read_the_same_from_categorical_or_text_tickers(
    prices: pd.DataFrame,
) -> None:
    gappy = prices.drop(index=prices.index[10:30]).reset_index(drop=True)
    gappy.loc[40, "close"] *= 3.0
    as_text = gappy.assign(ticker=gappy["ticker"].astype(str).astype(object))
    assert isinstance(gappy["ticker"].dtype, pd.CategoricalDtype)
    for report in (business_day_gaps, extreme_returns):
        found = report(gappy)
        assert len(found) > 0
        pd.testing.assert_frame_equal(found, report(as_text))
        assert found["ticker"].map(type).eq(str).all()


def test_a_bar_without_a_ticker_has_no_previous_bar(prices: pd.DataFrame) -> None:
    frame = prices.assign(ticker=prices["ticker"].astype(str).astype(object))
    frame.loc[[5, 6], "ticker"] = None  # an unvalidated frame: two bars of no ticker in a row
    frame.loc[6, ["high", "close"]] *= 3.0
    assert extreme_returns(frame).empty


def test_text_tickers_fail_the_type_check_by_their_type(prices: pd.DataFrame) -> None:
    check = PricesFrame.type_check(None, prices.assign(ticker=prices["ticker"].astype(object)))
    assert not check.success
    assert "category" in str(check.description)
    assert "AttributeError" not in str(check.description) + str(check.metadata)


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
    unsorted = prices.iloc[::-1]
    with pytest.raises(Exception, match="sorted_unique"):
        PRICES_SCHEMA.validate(unsorted)
