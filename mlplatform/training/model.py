"""Fit and apply the LightGBM direction model: deterministic for a seed, native text format only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlplatform.parallel import cores


def with_threads(params: Mapping[str, Any], threads: int | None = None) -> dict[str, Any]:
    """`params` run on `threads` LightGBM threads, by default one per CPU of this container's
    quota (parallel.cores): with deterministic and force_row_wise the trees do not depend on the
    count, so it is set where a fit runs, over any count a registered recipe carries."""
    return {**params, "num_threads": cores() if threads is None else int(threads)}


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
    count was chosen by tuning on the folds), on this container's CPUs. The same data and params
    (incl. seed and `deterministic`) give the same trees on any number of threads, and on the
    same number an identical `booster.model_to_string()` (which records the count)."""
    if int(num_boost_round) != num_boost_round or num_boost_round < 1:
        raise ValueError(f"num_boost_round must be an integer >= 1, got {num_boost_round!r}")
    _check_xy(X, y)
    dataset = lgb.Dataset(X, label=np.asarray(y), free_raw_data=True)
    return lgb.train(with_threads(params), dataset, num_boost_round=int(num_boost_round))


def predict_up_proba(booster: lgb.Booster, X: pd.DataFrame) -> np.ndarray:
    """P(up) per row of X, with X's columns put in the order the booster was trained on."""
    names = booster.feature_name()
    missing = [name for name in names if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the model's feature columns {missing}")
    # A booster read from a file carries no thread count: LightGBM would use every host core.
    return np.asarray(booster.predict(X[names], num_threads=cores()), dtype=np.float64)
