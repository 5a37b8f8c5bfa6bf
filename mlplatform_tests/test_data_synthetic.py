"""generate_market: determinism, append-only history, realism, and the known Bayes ceiling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlplatform.data import (
    PRICE_COLUMNS,
    PRICES_SCHEMA,
    generate_market,
    synthetic,
    validate_prices,
)

AS_OF = "2015-06-30"


@pytest.fixture(scope="module")
def market():
    return generate_market(seed=3, n_tickers=8, years=6, as_of=AS_OF)


def test_same_seed_identical_other_seed_different(market) -> None:
    again = generate_market(seed=3, n_tickers=8, years=6, as_of=AS_OF)
    pd.testing.assert_frame_equal(market.prices, again.prices, check_exact=True)
    pd.testing.assert_series_equal(market.prob_up, again.prob_up, check_exact=True)
    other = generate_market(seed=4, n_tickers=8, years=6, as_of=AS_OF)
    assert not np.allclose(other.prices["close"], market.prices["close"])


def test_later_as_of_only_appends_and_tickers_are_independent(market) -> None:
    later = generate_market(seed=3, n_tickers=8, years=7, as_of="2016-02-15").prices
    earlier = market.prices
    common = later[later["date"].between(earlier["date"].min(), earlier["date"].max())]
    common = common.reset_index(drop=True)
    pd.testing.assert_frame_equal(common, earlier.reset_index(drop=True), check_exact=True)
    assert later["date"].max() > earlier["date"].max()
    # a sliding window: moving as_of on keeps every shared bar bit-identical
    slid = generate_market(seed=3, n_tickers=8, years=6, as_of="2015-09-30").prices
    shared = earlier.merge(slid, on=["date", "ticker"], suffixes=("", "_new"))
    assert len(shared) > 0.9 * len(earlier)
    for column in PRICE_COLUMNS[2:]:
        assert (shared[column] == shared[f"{column}_new"]).all()
    # fewer tickers: the ones kept are unchanged
    fewer = generate_market(seed=3, n_tickers=3, years=6, as_of=AS_OF).prices
    subset = earlier[earlier["ticker"].isin(fewer["ticker"].unique())].reset_index(drop=True)
    subset["ticker"] = subset["ticker"].cat.remove_unused_categories()
    pd.testing.assert_frame_equal(fewer, subset, check_exact=True)


def test_the_epoch_is_the_first_business_day_of_its_year() -> None:
    """The streams are drawn in whole calendar years from the epoch's year, and its first day is
    the first simulated one: a later epoch would need the days before it drawn and skipped."""
    year = int(str(synthetic.EPOCH)[:4])
    assert synthetic._business_days(year)[0] == synthetic.EPOCH


def test_frame_contract_and_ohlc_consistency(market) -> None:
    prices = market.prices
    assert list(prices.columns) == list(PRICE_COLUMNS)
    assert isinstance(prices.index, pd.RangeIndex)
    assert prices["date"].dtype == "datetime64[ns]"
    validated = validate_prices(prices, source="synthetic")
    pd.testing.assert_frame_equal(validated, prices, check_exact=True)
    PRICES_SCHEMA.validate(prices)
    assert (prices["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (prices["low"] <= prices[["open", "close"]].min(axis=1)).all()
    assert prices["date"].max() == pd.Timestamp(AS_OF)
    assert (prices["date"].dt.dayofweek < 5).all()


def test_fat_tails_and_volume_follows_moves(market) -> None:
    prices = market.prices
    log_ret = np.log(prices["close"]).groupby(prices["ticker"], observed=True).diff()
    frame = pd.DataFrame({"ticker": prices["ticker"], "r": log_ret, "v": prices["volume"]}).dropna()
    kurtosis = frame.groupby("ticker", observed=True)["r"].apply(
        lambda r: stats.kurtosis(r, fisher=False)
    )
    assert (kurtosis > 3).all(), kurtosis
    corr = frame.groupby("ticker", observed=True).apply(
        lambda g: np.corrcoef(np.abs(g["r"]), np.log(g["v"]))[0, 1], include_groups=False
    )
    assert (corr > 0.1).all(), corr
    # a common factor: returns of different tickers are positively correlated on average
    wide = frame.assign(date=prices.loc[frame.index, "date"]).pivot(
        index="date", columns="ticker", values="r"
    )
    c = wide.corr().to_numpy()
    assert c[np.triu_indices_from(c, 1)].mean() > 0.1


def test_prob_up_shape_and_metadata(market) -> None:
    prob = market.prob_up
    assert prob.index.names == ["date", "ticker"]
    assert len(prob) == len(market.prices)
    assert prob.index.is_monotonic_increasing
    assert prob.between(0, 1).all()
    assert 0.55 <= market.bayes_accuracy <= 0.58
    assert 0.505 <= market.up_rate <= 0.53
    meta = market.describe()
    json.dumps(meta)
    assert meta["seed"] == 3 and meta["n_rows"] == len(market.prices)


def test_bayes_rule_scores_its_reported_accuracy() -> None:
    """Independent tickers (beta 0) make every (date, ticker) outcome a fresh coin given the
    past, so the accuracy of 'up when prob_up > 0.5' is binomial around bayes_accuracy."""
    big = generate_market(seed=11, n_tickers=150, years=8, as_of="2009-12-31", beta_range=(0, 0))
    prices = big.prices
    next_close = prices.groupby("ticker", observed=True)["close"].shift(-1)
    has_next = next_close.notna().to_numpy()
    up = (next_close > prices["close"]).to_numpy()[has_next]
    prob = big.prob_up.reindex(pd.MultiIndex.from_frame(prices[["date", "ticker"]]))
    predicted = (prob.to_numpy() > 0.5)[has_next]
    n = int(has_next.sum())
    correct = int((predicted == up).sum())
    low, high = stats.binom.interval(0.99, n, big.bayes_accuracy)
    assert low <= correct <= high, (correct / n, big.bayes_accuracy)
    # calibration: realised up share matches the mean probability
    low, high = stats.binom.interval(0.99, n, big.up_rate)
    assert low <= int(up.sum()) <= high


def test_regime_change_raises_volatility_and_shifts_drift() -> None:
    kwargs = dict(seed=5, n_tickers=10, years=4, as_of="2012-12-31")
    calm = generate_market(**kwargs)
    shifted = generate_market(**kwargs, regime_change="2011-07-01")
    for m in (calm, shifted):
        validate_prices(m.prices, source="synthetic")
    p = shifted.prices
    r = np.log(p["close"]).groupby(p["ticker"], observed=True).diff()
    after = p["date"] >= "2011-07-01"
    ratio = r[after].std() / r[~after].std()
    assert 2.0 < ratio < 3.0, ratio
    before = p["date"] < "2011-06-01"
    pd.testing.assert_frame_equal(p[before], calm.prices[before])
    idx = shifted.prob_up.index.get_level_values("date")
    assert shifted.prob_up[idx >= "2011-07-01"].mean() < calm.prob_up[idx >= "2011-07-01"].mean()
    assert shifted.describe()["regime_change"] == "2011-07-01"


def test_defaults_come_from_config() -> None:
    from mlplatform import config

    m = generate_market(as_of="2012-01-31", years=1)
    assert m.prices["ticker"].nunique() == config.SYNTHETIC.n_tickers
    assert m.seed == config.SYNTHETIC.seed
    with pytest.raises(ValueError):
        generate_market(as_of="1999-01-01")
    with pytest.raises(ValueError, match="at most 10,000"):  # names past T9999 break the order
        generate_market(n_tickers=10_001, as_of="2012-01-31", years=1)
