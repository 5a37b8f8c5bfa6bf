"""Backtest: same rows for every model, hand-checked P&L, baselines, no look-ahead, costs."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from mlplatform.evaluation import (
    BacktestSpec,
    naive_rules,
    previous_direction,
    run_backtest,
    up_rate,
)
from mlplatform.evaluation.backtest import (
    CLASSIFICATION_METRICS,
    STRATEGY_METRICS,
    strategy_returns,
)

BASELINES = ("training_majority", "always_up", "previous_direction", "buy_and_hold")


def _baselines(train: pd.Series, index: pd.Index, prices: pd.DataFrame) -> dict[str, pd.Series]:
    """The naive rules as the walk-forward builds them for one block."""
    return naive_rules(up_rate(train), previous_direction(prices, index))


def _index(n_dates: int, tickers: tuple[str, ...] = ("AAA", "BBB", "CCC")) -> pd.MultiIndex:
    dates = pd.bdate_range("2025-01-06", periods=n_dates)
    return pd.MultiIndex.from_product([dates, list(tickers)], names=["date", "ticker"])


def _window(n_dates: int = 40, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    """Forward returns and labels consistent with them (label = return > 0)."""
    idx = _index(n_dates)
    rng = np.random.default_rng(seed)
    fr = pd.Series(rng.normal(0.0005, 0.01, len(idx)), index=idx, name="forward_return")
    labels = (fr > 0).astype("int8").rename("label")
    return fr, labels


def _random_proba(index: pd.Index, seed: int) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).uniform(0, 1, len(index)), index=index)


def test_hand_computed_pnl_costs_and_turnover() -> None:
    idx = _index(3, ("A", "B"))  # rows: d1A d1B d2A d2B d3A d3B
    proba = pd.Series([0.9, 0.4, 0.2, 0.4, 0.7, 0.6], index=idx)
    fr = pd.Series([0.01, 0.02, -0.02, -0.01, 0.03, 0.0], index=idx)
    labels = (fr > 0).astype(int)
    res = run_backtest({"m": proba}, labels, fr, BacktestSpec(cost_bps=10, n_trials=1))
    ls = res.returns["m/long_short"].to_numpy()
    lf = res.returns["m/long_flat"].to_numpy()
    # each position is a round trip inside the bar: 2 x 10 bps per unit of position
    np.testing.assert_allclose(ls, [-0.007, 0.013, 0.013], atol=1e-12)
    np.testing.assert_allclose(lf, [0.004, 0.0, 0.013], atol=1e-12)
    np.testing.assert_allclose(res.equity["m/long_short"], np.cumprod(1 + np.array(ls)))
    assert res.metrics["m"]["long_short_turnover"] == pytest.approx(2.0)
    assert res.metrics["m"]["long_flat_turnover"] == pytest.approx(1.0)
    assert res.window == (idx[0][0], idx[-1][0])
    assert (res.n_rows, res.n_tickers) == (6, 2)
    assert res.mcnemar is None


def test_result_has_every_metric_key() -> None:
    fr, labels = _window()
    res = run_backtest(
        {"staging": _random_proba(fr.index, 1)}, labels, fr, BacktestSpec(cost_bps=5, n_trials=3)
    )
    expected = set(CLASSIFICATION_METRICS) | {
        f"{s}_{k}" for s in ("long_short", "long_flat") for k in STRATEGY_METRICS
    }
    assert set(res.metrics["staging"]) == expected
    assert list(res.equity.columns) == ["staging/long_short", "staging/long_flat"]


def test_perfect_predictor_scores_one_and_earns() -> None:
    fr, labels = _window()
    preds = {
        "staging": labels.astype(float),
        "production": _random_proba(fr.index, 2),
    }
    res = run_backtest(preds, labels, fr, BacktestSpec(cost_bps=5, n_trials=10))
    s = res.metrics["staging"]
    assert s["accuracy"] == 1.0 and s["balanced_accuracy"] == 1.0 and s["auc"] == 1.0
    assert s["long_short_sharpe"] > 0 and s["long_flat_sharpe"] > 0
    assert s["long_short_psr"] > 0.99 and s["p_value_vs_majority"] < 1e-6
    assert res.mcnemar is not None
    assert res.mcnemar["challenger_only_correct"] == 0
    assert res.mcnemar["p_value"] < 1e-6


def test_costs_reduce_returns_monotonically() -> None:
    fr, labels = _window(seed=3)
    preds = {"staging": _random_proba(fr.index, 4)}
    runs = [
        run_backtest(preds, labels, fr, BacktestSpec(cost_bps=c, n_trials=1))
        for c in (0, 1, 5, 20, 100)
    ]
    for strategy in ("long_short", "long_flat"):
        anns = [r.metrics["staging"][f"{strategy}_ann_return"] for r in runs]
        assert all(a > b for a, b in itertools.pairwise(anns))
        daily = np.array([r.returns[f"staging/{strategy}"].to_numpy() for r in runs])
        assert (np.diff(daily, axis=0) <= 1e-15).all()
    with pytest.raises(ValueError, match="cost_bps"):
        run_backtest(preds, labels, fr, BacktestSpec(cost_bps=-1, n_trials=1))


def test_no_look_ahead() -> None:
    fr, labels = _window(n_dates=40, seed=5)
    preds = {"staging": _random_proba(fr.index, 6), "production": _random_proba(fr.index, 7)}
    base = run_backtest(preds, labels, fr, BacktestSpec(cost_bps=5, n_trials=5))

    # returns after the window (no prediction there) change nothing at all
    later = _index(10)
    later = pd.MultiIndex.from_arrays(
        [later.get_level_values(0) + pd.offsets.BDay(40), later.get_level_values(1)],
        names=["date", "ticker"],
    )
    for seed in (8, 9):
        extra = pd.Series(np.random.default_rng(seed).normal(0, 0.5, len(later)), index=later)
        res = run_backtest(
            preds, labels, pd.concat([fr, extra]), BacktestSpec(cost_bps=5, n_trials=5)
        )
        assert json.dumps(res.to_dict()) == json.dumps(base.to_dict())

    # P&L up to date t depends on nothing after t: truncating the window keeps the prefix
    cut = fr.index.get_level_values(0).unique()[24]
    keep = fr.index.get_level_values(0) <= cut
    short = run_backtest(
        {k: v[keep] for k, v in preds.items()},
        labels[keep],
        fr[keep],
        BacktestSpec(cost_bps=5, n_trials=5),
    )
    pd.testing.assert_frame_equal(short.returns, base.returns.loc[:cut])
    # and scrambling the returns after t leaves the prefix of the full run unchanged
    scrambled = fr.copy()
    scrambled[~keep] = np.random.default_rng(10).normal(0, 0.1, int((~keep).sum()))
    res = run_backtest(preds, labels, scrambled, BacktestSpec(cost_bps=5, n_trials=5))
    pd.testing.assert_frame_equal(res.returns.loc[:cut], base.returns.loc[:cut])


def test_mismatched_indexes_score_the_intersection() -> None:
    fr, labels = _window(n_dates=40)
    dates = fr.index.get_level_values(0).unique()
    staging = _random_proba(fr.index, 1)
    prod_idx = pd.MultiIndex.from_product([dates[5:], ["AAA", "BBB"]], names=["date", "ticker"])
    # production given in (ticker, date) level order, shuffled: must be aligned by name
    production = _random_proba(prod_idx, 2).swaplevel().sample(frac=1.0, random_state=0)
    labels_missing = labels.drop(labels.index[-1])  # (last date, CCC): outside production anyway
    labels_missing = labels_missing.drop((dates[10], "AAA"))
    res = run_backtest(
        {"staging": staging, "production": production},
        labels_missing,
        fr,
        BacktestSpec(cost_bps=5, n_trials=1),
    )
    assert res.n_rows == 35 * 2 - 1
    assert res.n_tickers == 2
    assert res.window == (dates[5], dates[-1])
    assert res.metrics["staging"]["n"] == res.metrics["production"]["n"] == res.n_rows
    assert res.mcnemar is not None and res.mcnemar["n_discordant"] <= res.n_rows

    # unnamed levels are taken positionally as (date, ticker)
    unnamed = staging.copy()
    unnamed.index = unnamed.index.set_names([None, None])
    res2 = run_backtest({"staging": unnamed}, labels, fr, BacktestSpec(cost_bps=5, n_trials=1))
    assert res2.n_rows == len(fr)


def test_bad_inputs_raise_clear_errors() -> None:
    fr, labels = _window(n_dates=10)
    staging = _random_proba(fr.index, 1)
    elsewhere = _index(5, ("ZZZ",))
    with pytest.raises(ValueError, match="share no") as err:
        run_backtest(
            {"staging": _random_proba(elsewhere, 0)},
            labels,
            fr,
            BacktestSpec(cost_bps=5, n_trials=1),
        )
    assert "predictions['staging']: 5 rows" in str(err.value)
    with pytest.raises(ValueError, match="NaN"):
        run_backtest(
            {"staging": staging.where(staging > 0.1)},
            labels,
            fr,
            BacktestSpec(cost_bps=5, n_trials=1),
        )
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        run_backtest({"staging": staging * 3}, labels, fr, BacktestSpec(cost_bps=5, n_trials=1))
    with pytest.raises(ValueError, match="horizon"):
        run_backtest(
            {"staging": staging}, labels, fr, BacktestSpec(cost_bps=5, n_trials=1, horizon=5)
        )
    with pytest.raises(ValueError, match="no predictions"):
        run_backtest({}, labels, fr, BacktestSpec(cost_bps=5, n_trials=1))
    with pytest.raises(ValueError, match="duplicate"):
        run_backtest(
            {"staging": pd.concat([staging, staging])},
            labels,
            fr,
            BacktestSpec(cost_bps=5, n_trials=1),
        )
    with pytest.raises(ValueError, match="MultiIndex"):
        run_backtest(
            {"staging": staging.reset_index(drop=True)},
            labels,
            fr,
            BacktestSpec(cost_bps=5, n_trials=1),
        )


def test_naive_rules_definitions() -> None:
    dates = pd.bdate_range("2025-03-03", periods=4)
    prices = pd.DataFrame(
        {
            "date": np.repeat(dates, 2),
            "ticker": ["A", "B"] * 4,
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": [10, 5, 11, 4, 11, 6, 10, 7],
            "volume": 1.0,
        }
    )
    idx = pd.MultiIndex.from_product([dates, ["A", "B"]], names=["date", "ticker"])
    train = pd.Series([1, 1, 0, 1], dtype="int8")
    base = _baselines(train, idx, prices)
    assert tuple(base) == BASELINES
    for s in base.values():
        assert s.index.equals(idx)
    assert (base["training_majority"] == 0.75).all()
    assert (base["always_up"] == 1.0).all()
    assert (base["buy_and_hold"] == 1.0).all()
    # A: 10 → 11 (up) → 11 (flat counts as not up) → 10 (down); B: 5 → 4 → 6 → 7
    expected = pd.Series([0.75, 0.75, 1, 0, 0, 1, 0, 1], index=idx, dtype=float)
    pd.testing.assert_series_equal(base["previous_direction"], expected, check_names=False)
    with pytest.raises(ValueError, match="empty"):
        up_rate(pd.Series([], dtype=float))
    # int8 labels as the labels asset stores them, bools, and floats whose NaN is unknown
    for labels in (
        pd.Series([1, 0, 1, 1], dtype=np.int8),
        pd.Series([True, False, True, True]),
        pd.Series([1.0, np.nan, 0.0, 1.0, 1.0]),
    ):
        assert up_rate(labels) == 0.75
    with pytest.raises(ValueError, match="empty"):
        up_rate(pd.Series([np.nan]))


def test_baselines_in_a_backtest() -> None:
    fr, labels = _window(n_dates=30, seed=11)
    base = _baselines(pd.Series([0, 0, 1]), fr.index, _prices_for(fr.index))
    hold = fr * 1.5  # close-to-close returns differ from the intraday forward returns
    res = run_backtest(
        base, labels, fr, BacktestSpec(cost_bps=10, n_trials={"staging": 50}), hold_returns=hold
    )
    bh = res.metrics["buy_and_hold"]
    # held overnight in both strategies: the equal-weight close-to-close market less one entry cost
    market = hold.groupby(level="date").mean().to_numpy()
    market[0] -= 10 / 1e4
    # always_up trades the same direction intraday: a round trip every day
    always = fr.groupby(level="date").mean().to_numpy() - 2 * 10 / 1e4
    np.testing.assert_allclose(res.returns["always_up/long_short"], always)
    np.testing.assert_allclose(res.returns["buy_and_hold/long_short"], market)
    np.testing.assert_allclose(res.returns["buy_and_hold/long_flat"], market)
    assert bh["long_short_turnover"] == pytest.approx(1 / 30)
    assert bh["up_share"] == 1.0
    # majority training class is down: training_majority never goes long in long_flat
    assert res.metrics["training_majority"]["up_share"] == 0.0
    assert (res.returns["training_majority/long_flat"] == 0.0).all()
    # baselines count as one trial when n_trials is per model: DSR == PSR(0)
    for name in BASELINES:
        mm = res.metrics[name]
        if math.isfinite(mm["long_short_psr"]):
            assert mm["long_short_dsr"] == pytest.approx(mm["long_short_psr"])
    assert res.n_trials == dict.fromkeys(BASELINES, 1)


def _prices_for(index: pd.MultiIndex) -> pd.DataFrame:
    rng = np.random.default_rng(12)
    frame = index.to_frame(index=False)
    frame["close"] = 100 * np.exp(rng.normal(0, 0.01, len(frame)))
    return frame


def test_dsr_penalises_the_search() -> None:
    fr, labels = _window(n_dates=60, seed=13)
    noisy = labels.astype(float) * 0.15 + _random_proba(fr.index, 14) * 0.85
    one = run_backtest({"staging": noisy}, labels, fr, BacktestSpec(cost_bps=0, n_trials=1))
    many = run_backtest({"staging": noisy}, labels, fr, BacktestSpec(cost_bps=0, n_trials=200))
    s1, s200 = one.metrics["staging"], many.metrics["staging"]
    assert s1["long_short_dsr"] == pytest.approx(s1["long_short_psr"])
    assert s200["long_short_dsr"] < s1["long_short_dsr"]
    with_trials = run_backtest(
        {"staging": noisy},
        labels,
        fr,
        BacktestSpec(cost_bps=0, n_trials=200, trial_sharpes=[0.0, 0.01, 0.02]),
    )
    assert with_trials.metrics["staging"]["long_short_dsr"] != s200["long_short_dsr"]


def test_to_dict_is_json_safe() -> None:
    fr, _ = _window(n_dates=8)
    ones = pd.Series(1, index=fr.index, dtype="int8")  # one class only: AUC undefined
    res = run_backtest(
        {"staging": _random_proba(fr.index, 1), "production": _random_proba(fr.index, 2)},
        ones,
        fr,
        BacktestSpec(cost_bps=5, n_trials=3),
    )
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["metrics"]["staging"]["auc"] is None
    assert d["window"]["start"] == "2025-01-06"
    assert d["n_rows"] == len(fr) and d["mcnemar"]["n_discordant"] >= 0
    assert set(d["equity"]["series"]) == set(res.equity.columns)
    assert "equity" not in res.to_dict(include_equity=False)
    assert isinstance(json.loads(text)["metrics"]["staging"]["n"], float)


@pytest.mark.parametrize("held_overnight", [False, True])
def test_strategy_returns_equal_pandas_groupby_per_date(held_overnight: bool) -> None:
    """The per-date means come from index codes; pandas' groupby on the dates is the oracle,
    on a ragged panel (tickers missing on some dates) with NaN returns."""
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2024-01-02", periods=30)
    full = pd.MultiIndex.from_product([dates, ["A", "B", "C", "D"]], names=["date", "ticker"])
    index = full[rng.uniform(size=len(full)) > 0.3]
    positions = rng.choice([-1.0, 0.0, 1.0], size=len(index))
    returns = rng.normal(0, 0.01, len(index))
    returns[rng.uniform(size=len(index)) < 0.1] = np.nan
    net, trade = strategy_returns(positions, returns, index, 5.0, held_overnight=held_overnight)

    frame = pd.DataFrame(
        {"date": index.get_level_values(0), "ticker": index.get_level_values(1), "pos": positions}
    )
    previous = frame.groupby("ticker")["pos"].shift(1).fillna(0.0).to_numpy()
    frame["trade"] = np.abs(positions - previous) if held_overnight else 2.0 * np.abs(positions)
    frame["net"] = positions * returns - 5.0 / 1e4 * frame["trade"]
    daily = frame.groupby("date")[["net", "trade"]].mean()
    pd.testing.assert_series_equal(net, daily["net"], check_freq=False, rtol=1e-12)
    pd.testing.assert_series_equal(trade, daily["trade"], check_freq=False, rtol=1e-12)
