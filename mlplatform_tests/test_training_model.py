"""LightGBM fit/predict: deterministic for a seed, refuses misaligned or incomplete inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.training.model import predict_up_proba, train_model
from mlplatform.training.search_space import DEFAULT_PARAMS, SEARCH_SPACE, to_lgb_params


def _frame(seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2022-01-03", periods=120), ["A", "B", "C", "D"]], names=["date", "ticker"]
    )
    X = pd.DataFrame(
        rng.standard_normal((len(idx), 4)).astype(np.float32), index=idx, columns=list("abcd")
    )
    y = pd.Series(
        (X["a"].to_numpy() + rng.standard_normal(len(idx)) > 0).astype(np.int8), index=idx
    )
    return X, y


def test_same_data_and_params_give_identical_model() -> None:
    X, y = _frame()
    params = DEFAULT_PARAMS | {"bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.6}
    first = train_model(X, y, params, 25).model_to_string()
    assert first == train_model(X, y, params, 25).model_to_string()
    assert first != train_model(X, y, params | {"seed": 99}, 25).model_to_string()


def test_predict_up_proba_follows_the_model_columns() -> None:
    X, y = _frame()
    booster = train_model(X, y, DEFAULT_PARAMS, 10)
    proba = predict_up_proba(booster, X)
    assert proba.dtype == np.float64 and proba.shape == (len(X),)
    assert np.array_equal(proba, predict_up_proba(booster, X[["d", "c", "b", "a"]]))
    # skill on the signal feature: P(up) rises with it
    assert np.corrcoef(proba, X["a"])[0, 1] > 0.5
    with pytest.raises(ValueError, match="lacks"):
        predict_up_proba(booster, X.drop(columns="b"))


def test_bad_inputs_are_refused() -> None:
    X, y = _frame()
    with pytest.raises(ValueError, match="num_boost_round"):
        train_model(X, y, DEFAULT_PARAMS, 0)
    with pytest.raises(ValueError, match="rows"):
        train_model(X, y.iloc[1:], DEFAULT_PARAMS, 5)
    with pytest.raises(ValueError, match="aligned"):
        train_model(X, y.sort_index(level="ticker"), DEFAULT_PARAMS, 5)


def test_params_cap_num_leaves_by_depth_and_keep_base() -> None:
    params = to_lgb_params({"num_leaves": 100, "max_depth": 3}, seed=5)
    assert params["num_leaves"] == 8 and params["seed"] == 5
    assert params["deterministic"] is True and params["objective"] == "binary"
    assert set(SEARCH_SPACE) <= set(DEFAULT_PARAMS)
