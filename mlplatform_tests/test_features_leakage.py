"""No look-ahead, proven: history after t cannot change any feature value at or before t."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from mlplatform.features import FEATURE_COLUMNS, compute_features
from mlplatform_tests.test_features_support import assert_causal, make_prices

PRICES = make_prices()
CALENDAR = pd.DatetimeIndex(sorted(PRICES["date"].unique()))
# Before CCC starts, inside BBB's gaps, the day DDD ends, late in the history.
CUTS = [CALENDAR[i] for i in (90, 101, 149, 176, 199, 240, 280)]


@pytest.mark.parametrize("t", CUTS, ids=lambda t: str(t.date()))
@pytest.mark.parametrize("drop_warmup", [False, True], ids=["all_rows", "warm_rows"])
def test_every_feature_is_causal(t: pd.Timestamp, drop_warmup: bool) -> None:
    assert_causal(partial(compute_features, drop_warmup=drop_warmup), PRICES, t)


def test_the_cuts_exercise_every_feature_and_several_tickers() -> None:
    """Guard against a vacuous pass: each column has real values before the cuts we test."""
    features = compute_features(PRICES, drop_warmup=False)
    before = features[features.index.get_level_values("date") <= CUTS[1]]
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert before.notna().all(axis=1).sum() > 20
    assert np.isfinite(before.to_numpy()).any(axis=0).all()
    late = features.xs(CUTS[-1], level="date")
    assert late.notna().all(axis=1).sum() >= 2  # ranks compare more than one ticker there
    assert late["xs_rank_ret_1"].nunique() >= 2


def test_warm_rows_are_exactly_the_fully_defined_rows() -> None:
    full = compute_features(PRICES, drop_warmup=False)
    warm = compute_features(PRICES)
    assert warm.index.equals(full.index[full.notna().all(axis=1).to_numpy()])
    # a ticker's first 63 bars are warm-up (vol_63 needs 63 returns)
    first_warm = warm.reset_index().groupby("ticker")["date"].min()
    for ticker, group in PRICES.groupby("ticker"):
        assert first_warm[ticker] == group["date"].sort_values().iloc[63]


def _leaky(prices: pd.DataFrame) -> pd.DataFrame:
    """compute_features plus one centred (future-peeking) moving average."""
    features = compute_features(prices, drop_warmup=False)
    close = prices.set_index(["date", "ticker"])["close"].sort_index()
    centred = close.groupby(level="ticker").transform(
        lambda s: s.rolling(5, center=True).mean() / s
    )
    features["centred_ma"] = centred.reindex(features.index).astype(np.float32)
    return features


def test_the_check_catches_a_leaky_feature() -> None:
    with pytest.raises(AssertionError, match="centred_ma leaks"):
        assert_causal(_leaky, PRICES, CUTS[3])


def test_perturbing_one_ticker_after_t_touches_no_other_ticker_before_t() -> None:
    t = CUTS[4]
    changed = PRICES.copy()
    mask = (changed["ticker"] == "BBB") & (changed["date"] > t)
    changed.loc[mask, ["open", "high", "low", "close"]] *= 3.0
    a = compute_features(PRICES, drop_warmup=False)
    b = compute_features(changed, drop_warmup=False)
    early = a.index.get_level_values("date") <= t
    pd.testing.assert_frame_equal(a[early], b[early], check_exact=True)
