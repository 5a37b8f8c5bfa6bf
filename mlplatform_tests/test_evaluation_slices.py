"""Sliced evaluation: slices cover the window exactly once per kind, regimes and groups are set
without look-ahead, small slices show no figures, and a planted edge shows up where it lives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlplatform import config
from mlplatform.data.synthetic import generate_market
from mlplatform.evaluation import (
    BacktestSpec,
    naive_rules,
    previous_direction,
    render_html,
    run_backtest,
)
from mlplatform.evaluation.backtest import NAIVE_RULES, BacktestResult
from mlplatform.evaluation.slices import GROUP, REGIME, WHOLE, YEAR, SliceKeys
from mlplatform.features import outcomes
from mlplatform.registry.card import CARD_TAGS, TAG_SLICES, render, slices_tag

# 20 tickers x 5 years; the window opens in November 2023, so 2023 is a slice too small to judge
# (about 40 dates x 20 tickers < config.SLICES.min_rows) and 2024, 2025 and the regimes are not.
MARKET = generate_market(seed=11, n_tickers=20, years=5, as_of="2025-12-31")
START = pd.Timestamp("2023-11-01")
FIGURES = ["staging_accuracy", "staging_auc", "best_baseline", "edge", "edge_se"]


def _window() -> pd.DataFrame:
    truth = outcomes(MARKET.prices, 1)
    return truth[truth.index.get_level_values("date") >= START]


def _backtest(staging: pd.Series, keys: SliceKeys | None = None) -> BacktestResult:
    """Staging's P(up) beside the naive rules on the window's rows, sliced."""
    window = _window()
    previous = previous_direction(MARKET.prices, window.index)
    predictions = {"staging": staging, **naive_rules(0.52, previous)}
    return run_backtest(
        predictions,
        window["label"],
        window["forward_return"],
        BacktestSpec(cost_bps=5.0),
        slice_keys=keys or SliceKeys.from_prices(MARKET.prices, START.date()),
    )


def _coin(index: pd.Index, seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).uniform(0, 1, len(index)), index=index)


def _planted(where: np.ndarray) -> pd.Series:
    """A model that knows the label on the rows `where` and tosses a coin elsewhere."""
    window = _window()
    coin = _coin(window.index)
    return coin.where(~where, window["label"].astype(float))


@pytest.fixture(scope="module")
def coin_result() -> BacktestResult:
    return _backtest(_coin(_window().index))


def test_each_kind_of_slice_covers_the_window_once(coin_result: BacktestResult) -> None:
    slices = coin_result.slices
    assert slices is not None and list(slices["kind"].unique()) == [WHOLE, YEAR, REGIME, GROUP]
    rows = slices.groupby("kind", sort=False)["rows"].sum()
    assert (rows == coin_result.n_rows).all(), rows
    years = slices[slices["kind"] == YEAR]
    assert years["slice"].tolist() == ["2023", "2024", "2025"]
    assert years["dates"].sum() == len(coin_result.equity.index)
    whole = slices[slices["kind"] == WHOLE].iloc[0]
    staging = coin_result.metrics["staging"]
    assert whole["staging_accuracy"] == pytest.approx(staging["accuracy"])
    assert whole["staging_auc"] == pytest.approx(staging["auc"])
    best = max(NAIVE_RULES, key=lambda name: coin_result.metrics[name]["accuracy"])
    assert whole["edge"] == pytest.approx(
        staging["accuracy"] - coin_result.metrics[best]["accuracy"]
    )
    assert [s.split(" ")[0] for s in slices.loc[slices["kind"] == REGIME, "slice"]] == [
        "low",
        "mid",
        "high",
    ]
    groups = slices[slices["kind"] == GROUP]
    # 20 tickers by rank: 6 up to the first third, 7 up to the second, 7 above
    assert groups["slice"].tolist() == [
        "low vol (6 tickers)",
        "mid vol (7 tickers)",
        "high vol (7 tickers)",
    ]


def test_too_small_slices_say_so_and_show_no_figures(coin_result: BacktestResult) -> None:
    slices = coin_result.slices
    assert slices is not None
    small = slices[slices["note"] != ""]
    minimum = config.SLICES.min_rows
    assert small["slice"].tolist() == ["2023"]
    assert small["note"].iloc[0] == f"too few rows: {small['rows'].iloc[0]:,} < {minimum:,}"
    assert small[FIGURES].isna().all().all()
    assert slices.loc[slices["note"] == "", FIGURES].notna().all().all()
    assert (slices.loc[slices["note"] == "", "rows"] >= minimum).all()


def test_regimes_and_groups_do_not_look_ahead() -> None:
    keys = SliceKeys.from_prices(MARKET.prices, START.date())
    cut = pd.Timestamp("2024-06-28")
    later = MARKET.prices["date"] > cut
    shaken = MARKET.prices.copy()
    noise = np.random.default_rng(1).lognormal(0.0, 0.2, int(later.sum()))
    shaken.loc[later, "close"] = shaken.loc[later, "close"] * noise
    again = SliceKeys.from_prices(shaken, START.date())
    past = keys.regime.index <= cut
    pd.testing.assert_series_equal(again.regime[past], keys.regime[past])
    pd.testing.assert_series_equal(again.group, keys.group)
    assert not again.regime[~past].equals(keys.regime[~past])  # the shake did reach the future


def test_an_edge_planted_in_one_year_shows_up_there() -> None:
    dates = _window().index.get_level_values("date")
    slices = _backtest(_planted(dates.year == 2024)).slices
    assert slices is not None
    years = slices[slices["kind"] == YEAR].set_index("slice")
    assert years.loc["2024", "edge"] > 0.3
    assert years.loc["2024", "edge"] > 5 * years.loc["2024", "edge_se"]
    assert years.loc["2025", "edge"] < 2 * years.loc["2025", "edge_se"]


def test_an_edge_planted_in_one_regime_shows_up_there() -> None:
    keys = SliceKeys.from_prices(MARKET.prices, START.date())
    dates = _window().index.get_level_values("date")
    high = keys.regime.cat.categories[-1]
    in_high = (keys.regime.reindex(dates) == high).to_numpy()
    slices = _backtest(_planted(in_high), keys).slices
    assert slices is not None
    regimes = slices[slices["kind"] == REGIME].set_index("slice")
    assert regimes.loc[high, "edge"] > 0.3
    assert regimes.loc[high, "edge"] > 5 * regimes.loc[high, "edge_se"]
    calm = regimes.drop(index=high)
    assert (calm["edge"] < 2 * calm["edge_se"]).all(), calm


def test_the_model_card_says_where_the_edge_lives(coin_result: BacktestResult) -> None:
    assert coin_result.slices is not None
    tags = slices_tag(coin_result.slices.to_dict("records"), "staging")
    assert TAG_SLICES in CARD_TAGS  # a change rebuilds the exported cards
    recorded = json.loads(tags[TAG_SLICES])
    assert len(recorded) == len(coin_result.slices)
    assert all(set(r) >= {"kind", "slice", "rows", "dates"} for r in recorded)
    card = render({}, tags, "m", "1")
    section = card.split("## Where the edge lives")[1].split("## Promotion criteria")[0]
    assert "| year | 2023 |" in section and "too few rows:" in section
    assert "| year | 2024 |" in section and " pp |" in section
    without = render({}, {}, "m", "1").split("## Where the edge lives")[1]
    assert without.split("##")[0].strip().startswith("Not evaluated yet")


def test_the_html_report_shows_the_slices(coin_result: BacktestResult) -> None:
    page = render_html(coin_result)
    section = page.split("<h2>Where the edge lives")[1]
    assert "too few rows: " in section and "<td>volatility regime</td>" in section
