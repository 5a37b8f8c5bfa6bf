"""Evaluate the recipe by walk-forward, deploy the refit: windows, leakage, pairing, refit."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplatform.evaluation import previous_direction
from mlplatform.evaluation.metrics import classification_metrics
from mlplatform.features import outcomes
from mlplatform.features.layout import repeats_a_row, same_rows, values_on
from mlplatform.promotion import PRODUCTION, STAGING
from mlplatform.promotion.evidence import (
    BAYES,
    Contenders,
    bars_for_window,
    evaluate_candidate,
    walk_forward_baselines,
)
from mlplatform.training import (
    DEFAULT_PARAMS,
    LabelledData,
    Recipe,
    SplitError,
    Windows,
    build_candidate,
    dataset,
    labelled_rows,
    plan_windows,
    recipe_from_tags,
    recipe_tags,
    walk_forward_predictions,
)

CALENDAR = pd.bdate_range("2016-01-01", periods=1500)


@settings(max_examples=60, deadline=None)
@given(
    months=st.integers(3, 36),
    refit=st.integers(1, 12),
    horizon=st.integers(1, 10),
    n_dates=st.integers(900, 1500),
)
def test_windows_purge_every_block_and_tile_the_evaluation(
    months: int, refit: int, horizon: int, n_dates: int
) -> None:
    cal = CALENDAR[:n_dates]
    if refit > months:
        with pytest.raises(SplitError, match="refit_months"):
            plan_windows(cal, evaluation_months=months, refit_months=refit, horizon=horizon)
        return
    windows = plan_windows(cal, evaluation_months=months, refit_months=refit, horizon=horizon)
    pos = {d.date(): i for i, d in enumerate(cal)}
    start = pos[windows.evaluation.start]
    # development ends `horizon` dates before the evaluation window: its labels never reach it
    assert pos[windows.development.end] + horizon < start
    assert pos[windows.development.end] == start - horizon - 1
    expected = start
    for block in windows.blocks:
        first, last = pos[block.test.start], pos[block.test.end]
        assert first == expected and last >= first  # contiguous, no gap, no overlap
        # purge: the label window [t, t+h] of every training date ends before the block
        assert pos[block.train_end] + horizon < first
        assert pos[block.train_end] == first - horizon - 1
        expected = last + 1
    assert expected == n_dates  # the blocks tile the window up to the last labelled date
    assert windows.refit.start == cal[0].date() and windows.refit.end == cal[-1].date()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"evaluation_months": 0, "refit_months": 1}, "evaluation_months"),
        ({"evaluation_months": 120, "refit_months": 3}, "evaluation_months"),
        ({"evaluation_months": 6, "refit_months": 0}, "refit_months"),
        ({"evaluation_months": 6, "refit_months": 7}, "refit_months"),
    ],
)
def test_window_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(SplitError) as info:
        plan_windows(CALENDAR[:600], horizon=1, **kwargs)
    assert info.value.field == field


def _data(n_dates: int = 400, seed: int = 0) -> LabelledData:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2020-01-01", periods=n_dates), ["A", "B", "C"]], names=["date", "ticker"]
    )
    X = pd.DataFrame(rng.standard_normal((len(index), 3)), index=index, columns=["f1", "f2", "f3"])
    y = pd.Series(
        (X["f1"].to_numpy() + rng.standard_normal(len(index)) > 0).astype("int8"),
        index=index,
        name="label",
    )
    return LabelledData(X, y)


RECIPE = Recipe(
    params={**DEFAULT_PARAMS, "seed": 7, "deterministic": True, "num_threads": 1},
    num_boost_round=15,
    feature_schema_hash="schema",
    label_definition="up [horizon=2]",
)


CAPPED = Recipe(**{**RECIPE.__dict__, "max_training_rows": 700})


def _windows(data: LabelledData) -> Windows:
    return plan_windows(data.dates.unique(), evaluation_months=6, refit_months=2, horizon=2)


def _poison(data: LabelledData, rows: np.ndarray, keep_features: np.ndarray) -> LabelledData:
    """Flip the labels of `rows` and scramble their features (except `keep_features` rows)."""
    X, y = data.X.copy(), data.y.copy()
    y[rows] = 1 - y[rows]
    X.loc[rows & ~keep_features] = -X.loc[rows & ~keep_features].to_numpy()
    return LabelledData(X, y)


def test_the_returns_after_each_row_stay_aligned_with_it_through_every_window() -> None:
    """labelled_rows carries outcomes' returns beside y, and every window, sample and mask of
    the rows (sorted or not) keeps each row's own returns: tuning's Sharpe and the backtest's
    returns come from them."""
    data = _data(n_dates=200)
    rng = np.random.default_rng(5)
    after = pd.DataFrame(
        {"label": data.y.to_numpy(), "forward_return": rng.standard_normal(len(data.y))},
        index=data.y.index,
    ).assign(hold_return=lambda f: f["forward_return"] * 2)
    kept = after.iloc[::-1].drop(after.index[7])  # any order, a row missing
    data = labelled_rows(data.X, kept)
    assert len(data.X) == len(after) - 1
    windows = _windows(data)
    order = np.random.default_rng(3).permutation(len(data.X))
    shuffled = LabelledData(data.X.iloc[order], data.y.iloc[order], data.returns.iloc[order])
    for part in [
        data.within(windows.blocks[1].test),
        data.until(windows.blocks[0].train_end),
        data.take(np.arange(0, len(data.X), 3)),
        shuffled.within(windows.blocks[1].test),
    ]:
        assert part.returns is not None and part.returns.index is part.X.index
        expected = after.loc[part.X.index]
        np.testing.assert_array_equal(part.y.to_numpy(), expected["label"].to_numpy())
        for name in ("forward_return", "hold_return"):
            np.testing.assert_array_equal(part.returns_of(name).to_numpy(), expected[name])
    without = labelled_rows(data.X, after[["label"]])
    assert without.returns is None
    with pytest.raises(ValueError, match="no returns"):
        without.returns_of("forward_return")
    with pytest.raises(ValueError, match="not all of"):  # half the returns: refused, not dropped
        labelled_rows(data.X, after[["label", "forward_return"]])


@pytest.mark.parametrize("gap", [False, True])
def test_the_labels_frame_gives_the_same_labelled_rows_back(gap: bool) -> None:
    """What the labels asset stores (outcome_frame), pickled as the IO manager does, gives the
    same X, y and returns, X a view of the features when its rows lead them."""
    data = _data(n_dates=60)
    rng = np.random.default_rng(8)
    after = pd.DataFrame(
        {"label": data.y.to_numpy(), "forward_return": rng.standard_normal(len(data.y))},
        index=data.y.index,
    ).assign(hold_return=lambda f: f["forward_return"] - 0.5)
    after = after.iloc[:-6]  # the last two dates: no bar `horizon` later
    if gap:  # one ticker without labels mid-history: the labelled rows are no leading run
        after = after.drop(after.index[after.index.get_level_values("ticker") == "B"][10:13])
    first = labelled_rows(data.X, after.iloc[::-1])  # by keys: the rows in another order
    frame = pickle.loads(pickle.dumps(first.outcome_frame(), protocol=5))
    again = labelled_rows(data.X, frame)
    pd.testing.assert_frame_equal(again.X, first.X)
    expected = after.loc[again.X.index]
    np.testing.assert_array_equal(again.y.to_numpy(), expected["label"].to_numpy())
    for name in ("forward_return", "hold_return"):
        np.testing.assert_array_equal(again.returns_of(name).to_numpy(), expected[name])
    if not gap:
        assert np.shares_memory(again.X.to_numpy(), data.X.to_numpy())  # X stays a view
    # equal codes over other levels are other rows: matched by keys, never by position
    shifted = frame.set_axis(
        frame.index.set_levels(frame.index.levels[0] + pd.Timedelta(days=1), level=0)
    )
    moved = labelled_rows(data.X, shifted)
    assert moved.X.index.equals(data.X.index[data.X.index.isin(shifted.index)])


@pytest.mark.parametrize("gap", [False, True])
def test_labelled_rows_are_the_rows_with_features_and_a_label(gap: bool) -> None:
    data = _data(n_dates=30)
    features = data.X
    labels = data.y.iloc[3:-6]  # no label on the first date nor on the last two (horizon)
    if gap:  # one ticker without labels mid-history: the labelled rows are no leading run
        labels = labels.drop(labels.index[labels.index.get_level_values("ticker") == "B"][10:13])
    got = labelled_rows(features, labels.to_frame())
    expected = features.index.intersection(labels.index)
    assert got.X.index.equals(expected)
    pd.testing.assert_frame_equal(got.X, features.loc[expected])
    pd.testing.assert_series_equal(got.y, labels.loc[expected])
    with pytest.raises(SplitError, match="no row has both"):
        labelled_rows(features.iloc[:3], labels.to_frame())


def test_windows_of_unsorted_rows_equal_those_of_sorted_rows() -> None:
    data = _data(n_dates=200)
    order = np.random.default_rng(3).permutation(len(data.X))
    shuffled = LabelledData(data.X.iloc[order], data.y.iloc[order])
    windows = _windows(data)
    window, last = windows.blocks[1].test, windows.blocks[1].train_end
    for part, other in [
        (data.within(window), shuffled.within(window)),
        (data.until(last), shuffled.until(last)),
    ]:
        pd.testing.assert_frame_equal(part.X, other.X.sort_index())
        pd.testing.assert_series_equal(part.y, other.y.sort_index())
        assert part.X.index.equals(part.y.index)
    assert data.within(windows.refit) is data  # the whole range: no copy


def test_windows_are_cut_as_a_timestamp_mask_would_cut_them() -> None:
    """Date-sorted rows are cut as a range: the same rows as a mask on the dates, for bounds
    between or outside the rows' dates and for rows whose level holds dates they do not use (a
    window of a window)."""
    data = _data(n_dates=200)
    part = data.within(_windows(data).blocks[1].test)
    assert len(part.X.index.levels[0]) > part.X.index.get_level_values("date").nunique()
    small = _data(n_dates=100)  # int8 codes
    # a level longer than its int8 codes can number (pandas allows it unverified)
    level_days = pd.bdate_range("2019-01-01", periods=300)
    overflow = small.X.index.set_levels(level_days, level="date", verify_integrity=False)
    assert overflow.codes[0].dtype == np.int8
    long_level = LabelledData(small.X.set_axis(overflow), small.y.set_axis(overflow))
    for rows in (data, part, small, long_level):
        dates = rows.X.index.get_level_values("date")
        days = pd.date_range(dates.min() - pd.Timedelta(days=3), dates.max() + pd.Timedelta(days=3))
        beyond = rows.X.index.levels[0][-1]  # the level's last date, past the rows' own
        cuts = [(days[0], days[-1]), (days[4], days[-6]), (days[5], days[5]), (days[0], beyond)]
        for first, last in cuts:
            mask = np.asarray((dates >= first) & (dates <= last))
            got = rows.within(dataset.DateWindow(first.date(), last.date()))
            pd.testing.assert_frame_equal(got.X, rows.X[mask])
            pd.testing.assert_series_equal(got.y, rows.y[mask])
            assert np.array_equal(
                rows.positions_until(last.date()), np.flatnonzero(np.asarray(dates <= last))
            )
            assert len(rows.until(first.date()).X) == int((dates <= first).sum())


def test_the_candidate_draws_its_training_sample_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refit and the walk-forward's blocks train on the same sample: it is drawn (copied out
    of the labelled rows) once per candidate, also for rows sorted without a sorted date level."""
    data = _data()  # 1,200 rows: CAPPED samples 700
    plain = data.X.index.get_level_values("date")  # a DatetimeIndex named "date": sorted rows
    flat = LabelledData(data.X.set_axis(plain), data.y.set_axis(plain))
    assert flat.within(_windows(data).refit) is flat
    draws = []
    take = LabelledData.take

    def counted(self: LabelledData, positions: np.ndarray | None) -> LabelledData:
        draws.extend([] if positions is None else [len(positions)])
        return take(self, positions)

    monkeypatch.setattr(LabelledData, "take", counted)
    for rows in (data, flat):
        draws.clear()
        build_candidate(CAPPED, rows, _windows(data))
        assert draws == [700]


@pytest.mark.parametrize("recipe", [RECIPE, CAPPED], ids=["all rows", "row sample"])
def test_no_block_is_predicted_by_a_model_that_saw_its_future(recipe: Recipe) -> None:
    data = _data()
    windows = _windows(data)
    scores = walk_forward_predictions(recipe, data, windows)
    assert len(windows.blocks) >= 3
    dates = np.asarray(data.dates)
    for block in windows.blocks:
        in_block = block.test.contains(data.dates)
        # Every label after the block's training end (its own included) and every later
        # feature row: if the block's model had seen any of them, its predictions would move.
        after = dates > np.datetime64(block.train_end)
        scored = block.test.contains(scores.index.get_level_values("date"))
        poisoned = walk_forward_predictions(recipe, _poison(data, after, in_block), windows)
        np.testing.assert_array_equal(poisoned[scored].to_numpy(), scores[scored].to_numpy())
        # control: the same poison on the dates it does train on changes them
        before = ~after
        control = walk_forward_predictions(recipe, _poison(data, before, in_block), windows)
        assert not np.array_equal(control[scored].to_numpy(), scores[scored].to_numpy())


def test_walk_forward_covers_exactly_the_evaluation_rows() -> None:
    data = _data()
    windows = _windows(data)
    scores = walk_forward_predictions(RECIPE, data, windows)
    assert scores.index.equals(data.within(windows.evaluation).X.index)
    assert scores.between(0, 1).all()


def test_refit_trains_through_the_last_labelled_date() -> None:
    data = _data()
    candidate = build_candidate(RECIPE, data, _windows(data))
    assert candidate.training_rows == len(data.X)
    assert candidate.windows.refit.end == data.dates.max().date()
    # the registered model is the recipe on every row, not the last block's model
    assert (
        candidate.booster.model_to_string()
        == RECIPE.fit(data).model_to_string()
        != RECIPE.fit(data.until(candidate.windows.blocks[-1].train_end)).model_to_string()
    )


def test_a_capped_recipe_trains_every_fit_on_one_seeded_sample() -> None:
    data = _data()  # 1,200 rows
    positions = CAPPED.training_positions(len(data.X))
    assert positions is not None and len(positions) == 700
    assert np.array_equal(positions, np.unique(positions))  # sorted, no row twice
    assert np.array_equal(positions, CAPPED.training_positions(len(data.X)))  # seeded
    reseeded = Recipe(**{**CAPPED.__dict__, "params": {**CAPPED.params, "seed": 8}})
    assert not np.array_equal(positions, reseeded.training_positions(len(data.X)))
    assert CAPPED.training_positions(700) is None and RECIPE.training_positions(10**9) is None

    candidate = build_candidate(CAPPED, data, _windows(data))
    assert candidate.training_rows == 700
    sample = LabelledData(data.X.iloc[positions], data.y.iloc[positions])
    pd.testing.assert_frame_equal(candidate.trained.X, sample.X)  # the drift reference's rows
    assert candidate.booster.model_to_string() == RECIPE.fit(sample).model_to_string()
    assert candidate.booster.model_to_string() != RECIPE.fit(data).model_to_string()
    assert CAPPED.key != RECIPE.key
    # rows outside the sample reach no fit: poisoning them (labels flipped, features scrambled
    # except on the rows being predicted) leaves every block's predictions as they were
    windows = _windows(data)
    scores = walk_forward_predictions(CAPPED, data, windows)
    pd.testing.assert_series_equal(candidate.out_of_sample, scores)
    outside = np.ones(len(data.X), dtype=bool)
    outside[positions] = False
    predicted = windows.evaluation.contains(data.dates)
    poisoned = walk_forward_predictions(CAPPED, _poison(data, outside, predicted), windows)
    pd.testing.assert_series_equal(poisoned, scores)


def _prices(data: LabelledData) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = data.X.index.to_frame(index=False)
    frame["close"] = 100 * np.exp(rng.standard_normal(len(frame)).cumsum() * 0.01)
    frame["open"] = frame["close"] * (1 + 0.001 * rng.standard_normal(len(frame)))
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.01
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.99
    frame["volume"] = 1000.0
    return frame.sort_values(["ticker", "date"]).reset_index(drop=True)


def test_staging_and_production_are_scored_on_identical_rows() -> None:
    prices = _prices(_data())
    data = labelled_rows(_data().X, outcomes(prices, horizon=1))  # the returns ride along
    windows = plan_windows(data.dates.unique(), evaluation_months=6, refit_months=2, horizon=1)
    staging = walk_forward_predictions(RECIPE, data, windows)
    production = Recipe(**{**RECIPE.__dict__, "num_boost_round": 5})
    contenders = Contenders(staging, 10, [0.01, 0.02, 0.03], production=production)
    evaluation = evaluate_candidate(data, windows, prices, contenders, cost_bps=5.0)
    metrics = evaluation.result.metrics
    assert metrics[STAGING]["n"] == metrics[PRODUCTION]["n"] == evaluation.result.n_rows
    assert evaluation.result.mcnemar is not None  # a paired comparison
    assert {"training_majority", "always_up", "previous_direction"} <= set(metrics)


def test_the_bayes_rule_scores_the_truth_of_the_evaluated_rows_sorted_or_not() -> None:
    prices = _prices(_data())
    data = labelled_rows(_data().X, outcomes(prices, horizon=1))
    windows = plan_windows(data.dates.unique(), evaluation_months=6, refit_months=2, horizon=1)
    contenders = Contenders(walk_forward_predictions(RECIPE, data, windows), 10, [0.01, 0.02])
    p_up = np.random.default_rng(4).uniform(0.2, 0.8, len(data.X))
    truth = pd.Series(p_up, index=data.X.index).sort_index()  # the synthetic market's order
    shuffled = truth.sample(frac=1.0, random_state=5)
    scored = [
        evaluate_candidate(data, windows, prices, contenders, cost_bps=5.0, truth=t).result
        for t in (truth, shuffled)
    ]
    evaluated = data.within(windows.evaluation)
    expected = classification_metrics(
        evaluated.y.to_numpy(), truth.loc[evaluated.X.index].to_numpy()
    )
    for result in scored:
        assert result.metrics[BAYES]["n"] == len(evaluated.X) == result.n_rows
        for name, value in expected.items():
            assert result.metrics[BAYES][name] == pytest.approx(value)
    # a truth that misses a row of the window scores no Bayes rule (never on fewer rows)
    missing = truth.drop(evaluated.X.index[:1])
    result = evaluate_candidate(
        data, windows, prices, contenders, cost_bps=5.0, truth=missing
    ).result
    assert BAYES not in result.metrics


def test_training_majority_is_walked_forward() -> None:
    data = _data()
    windows = _windows(data)
    majority = walk_forward_baselines(data, windows, _prices(data))["training_majority"]
    for block in windows.blocks:
        in_block = block.test.contains(majority.index.get_level_values("date"))
        seen = data.until(block.train_end).y.mean()
        assert np.allclose(majority[in_block], seen)


def test_a_recipe_survives_its_registry_tags() -> None:
    for recipe in (RECIPE, CAPPED):
        assert recipe_from_tags(recipe_tags(recipe)) == recipe
    # a version registered before the cap existed trained on every row, and keeps its key
    old_tags = {k: v for k, v in recipe_tags(RECIPE).items() if k != "max_training_rows"}
    assert recipe_from_tags(old_tags) == RECIPE
    doc = json.dumps(
        [
            RECIPE.params,
            RECIPE.num_boost_round,
            RECIPE.feature_schema_hash,
            RECIPE.label_definition,
        ],
        sort_keys=True,
        default=str,
    )
    assert RECIPE.key == hashlib.sha256(doc.encode()).hexdigest()[:16]
    # sampling the rows is another model: another params hash, so a MINOR version bump
    assert recipe_tags(CAPPED)["params_hash"] != recipe_tags(RECIPE)["params_hash"]


def test_the_baselines_read_the_same_previous_directions_from_the_windowed_bars() -> None:
    """bars_for_window keeps what every row from `start` on needs: its ticker's previous bar,
    however long before `start` (a halt), for every kind of ticker."""
    dates = pd.bdate_range("2024-01-01", periods=80)
    start = dates[40]
    histories = {
        "ALL": dates,  # every day
        "HALT": dates[:30].append(dates[50:]),  # last bar before start is 10 days earlier
        "GONE": dates[:35],  # delisted before start
        "NEW": dates[45:],  # listed after start
        "EDGE": dates[:41],  # its last bar is start itself
    }
    rng = np.random.default_rng(3)
    frames = []
    for ticker, days in histories.items():
        close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(len(days))))
        frames.append(
            pd.DataFrame(
                {
                    "date": days,
                    "ticker": ticker,
                    "open": close * 1.001,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    prices = pd.concat(frames).sort_values(["ticker", "date"], ignore_index=True)
    windowed = bars_for_window(prices, start.date())
    assert len(windowed) < len(prices)
    shuffled = prices.sample(frac=1.0, random_state=0)  # not the canonical order: kept whole
    assert bars_for_window(shuffled, start.date()) is shuffled
    dates_reversed = prices.sort_values(["ticker", "date"], ascending=[True, False])
    assert bars_for_window(dates_reversed, start.date()) is dates_reversed  # tickers sorted only
    rows = outcomes(prices).index
    rows = rows[rows.get_level_values("date") >= start]
    pd.testing.assert_series_equal(
        previous_direction(windowed, rows), previous_direction(prices, rows)
    )


def test_same_rows_is_equality_of_rows_in_order() -> None:
    """The short cut behind labelled_rows and the backtest's alignment agrees with
    `Index.equals` on a stored copy, a reordering, other levels and another length."""
    index = _data(n_dates=20).X.index
    stored = pickle.loads(pickle.dumps(index, protocol=5))
    assert same_rows(index, stored) and same_rows(index[:30], stored[:30])
    assert not same_rows(index, stored[::-1])
    assert not same_rows(index, index[:-1])
    later = index.set_levels(index.levels[0] + pd.Timedelta(days=1), level=0)
    assert not same_rows(index, later)  # the same codes over other dates are other rows
    assert same_rows(index, index.remove_unused_levels())
    flat = index.get_level_values(0)
    assert same_rows(flat, flat.copy()) and not same_rows(flat, flat[::-1])
    values = pd.Series(np.arange(len(index), dtype=float), index=index)
    np.testing.assert_array_equal(values_on(values, stored), values.to_numpy())
    np.testing.assert_array_equal(values_on(values.iloc[::-1], index), values.to_numpy())
    assert np.isnan(values_on(values.iloc[1:], index)[0])


def test_repeats_a_row_agrees_with_has_duplicates() -> None:
    index = _data(n_dates=20).X.index
    for rows in (index, index[::-1], index[:-1], index.append(index[5:6]), index[[0, 0]]):
        assert repeats_a_row(rows) == rows.has_duplicates
    dated = pd.MultiIndex.from_arrays([[pd.NaT, pd.NaT], ["A", "A"]])  # missing codes: -1
    assert repeats_a_row(dated) == dated.has_duplicates
