"""Splits are by date, purged and embargoed: proven on the index arithmetic, for many settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplatform.training.splits import (
    SplitError,
    rows_for,
    walk_forward_folds,
)

CALENDAR = pd.bdate_range("2015-01-01", periods=1200)


def _pos(cal: pd.DatetimeIndex, dates: pd.DatetimeIndex) -> np.ndarray:
    return cal.get_indexer(dates)


@settings(max_examples=60, deadline=None)
@given(
    n_dates=st.integers(200, 700),
    n_folds=st.integers(1, 6),
    horizon=st.integers(1, 10),
    embargo=st.integers(0, 15),
    min_train=st.integers(20, 150),
)
def test_walk_forward_folds_are_purged_embargoed_and_forward(
    n_dates: int, n_folds: int, horizon: int, embargo: int, min_train: int
) -> None:
    cal = CALENDAR[:n_dates]
    try:
        folds = walk_forward_folds(
            cal, n_folds=n_folds, horizon=horizon, embargo_days=embargo, min_train_days=min_train
        )
    except SplitError as exc:
        assert exc.field in {"n_folds", "min_train_days"}
        assert n_dates < min_train + horizon + n_folds * 5
        return
    assert len(folds) == n_folds
    blocks = []
    for k, fold in enumerate(folds):
        train, test = _pos(cal, fold.train_dates), _pos(cal, fold.test_dates)
        assert (train >= 0).all() and (test >= 0).all()
        # the test block is contiguous and every training date is strictly before it
        assert (np.diff(test) == 1).all()
        assert train.max() < test.min()
        # purge: no training label window [t, t+h] overlaps the test block
        assert (train + horizon < test.min()).all()
        # expanding: each fold trains on at least as many dates as the one before
        if k:
            assert len(fold.train_dates) >= len(folds[k - 1].train_dates) - embargo
        # embargo: the first `embargo` dates after every earlier test block are not trained on
        for prev in blocks:
            margin = np.arange(prev[-1] + 1, prev[-1] + 1 + embargo)
            assert not np.isin(train, margin).any()
        blocks.append(test)
    # the first fold trains on exactly min_train_days dates, the blocks tile the rest
    assert len(folds[0].train_dates) == min_train
    tiled = np.concatenate(blocks)
    assert (tiled == np.arange(min_train + horizon, n_dates)).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_folds": 40, "min_train_days": 50}, "n_folds"),
        ({"n_folds": 2, "min_train_days": 299}, "min_train_days"),
        ({"n_folds": 0, "min_train_days": 50}, "n_folds"),
        ({"n_folds": 2, "min_train_days": 50, "embargo_days": -1}, "embargo_days"),
        ({"n_folds": 2, "min_train_days": 50, "horizon": 0}, "horizon"),
    ],
)
def test_walk_forward_errors_name_the_field(kwargs: dict, field: str) -> None:
    args = {"horizon": 1, "embargo_days": 5} | kwargs
    with pytest.raises(SplitError) as err:
        walk_forward_folds(CALENDAR[:200], **args)
    assert err.value.field == field
    assert isinstance(err.value, ValueError)


def test_rows_for_selects_every_ticker_of_the_dates() -> None:
    idx = pd.MultiIndex.from_product([CALENDAR[:5], ["A", "B", "C"]], names=["date", "ticker"])
    mask = rows_for(idx, CALENDAR[1:3])
    assert mask.dtype == bool and mask.sum() == 6
    assert set(idx[mask].get_level_values("date")) == set(CALENDAR[1:3])
    assert rows_for(CALENDAR[:5], CALENDAR[4:]).tolist() == [False] * 4 + [True]


def test_rows_for_reads_the_date_level_as_a_per_row_isin_would() -> None:
    """Through the level codes: rows in any order, unused level dates, a missing date."""
    idx = pd.MultiIndex.from_product([CALENDAR[:6], ["A", "B"]], names=["ticker", "date"][::-1])
    for index in (
        idx[::-1],
        idx[idx.get_level_values("date") != CALENDAR[2]],
        pd.MultiIndex.from_arrays(
            [["A", "B", "A"], [CALENDAR[1], pd.NaT, CALENDAR[3]]], names=["ticker", "date"]
        ),
    ):
        for dates in (CALENDAR[1:4], CALENDAR[10:12], CALENDAR[:0]):
            expected = pd.DatetimeIndex(index.get_level_values("date")).isin(dates)
            np.testing.assert_array_equal(rows_for(index, dates), expected)


def test_fold_describe_is_json_safe() -> None:
    folds = walk_forward_folds(
        CALENDAR[:300], n_folds=2, horizon=1, embargo_days=3, min_train_days=100
    )
    info = folds[1].describe()
    assert info["n_train_dates"] == len(folds[1].train_dates)
    assert isinstance(info["test_start"], str)
