"""Fit and apply the LightGBM direction model: deterministic for a seed, native text format only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd


def _check_xy(X: pd.DataFrame, y: pd.Series) -> None:
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("X is empty: nothing to train on")
    if isinstance(y, pd.Series) and not X.index.equals(y.index):
        raise ValueError("X and y are not aligned: their indexes differ")


def train_model(
    X: pd.DataFrame, y: pd.Series, params: Mapping[str, Any], num_boost_round: int
) -> lgb.Booster:
    """Train on all of X, y for exactly `num_boost_round` rounds (no early stopping: the round
    count was chosen by tuning on the folds). The same data and params (incl. seed and
    `deterministic`) give an identical `booster.model_to_string()`."""
    if int(num_boost_round) != num_boost_round or num_boost_round < 1:
        raise ValueError(f"num_boost_round must be an integer >= 1, got {num_boost_round!r}")
    _check_xy(X, y)
    dataset = lgb.Dataset(X, label=np.asarray(y), free_raw_data=True)
    return lgb.train(dict(params), dataset, num_boost_round=int(num_boost_round))


def predict_up_proba(booster: lgb.Booster, X: pd.DataFrame) -> np.ndarray:
    """P(up) per row of X, with X's columns put in the order the booster was trained on."""
    names = booster.feature_name()
    missing = [name for name in names if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the model's feature columns {missing}")
    return np.asarray(booster.predict(X[names]), dtype=np.float64)
