"""A recipe is what the platform evaluates: features, label and tuned LightGBM parameters.

It is scored by walk-forward (each evaluation block predicted by the recipe trained only on
labelled rows before that block, purged by the label horizon) and deployed as a refit on every
labelled row, so production never serves a model months older than its data.

A recipe may cap its training rows: every fit (each walk-forward block and the refit) then trains
on one seeded uniform sample of the labelled rows, so the model scored is the model deployed. The
out-of-sample accuracy stops improving long before a whole-market universe's rows, while every
fit's time grows with them (measured by `benchmarks/bench_training_rows.py`, docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlplatform.training.dataset import LabelledData, Windows
from mlplatform.training.model import predict_up_proba, train_model, with_threads


@dataclass(frozen=True)
class Recipe:
    params: dict[str, Any]  # full LightGBM params, seed included
    num_boost_round: int
    feature_schema_hash: str
    label_definition: str
    max_training_rows: int | None = None  # None: every labelled row

    @property
    def key(self) -> str:
        """Identifies the recipe: same key, same model on the same rows (LightGBM is seeded)."""
        parts: list[Any] = [
            self.params,
            self.num_boost_round,
            self.feature_schema_hash,
            self.label_definition,
        ]
        if self.max_training_rows is not None:  # keys of uncapped recipes stay what they were
            parts.append(self.max_training_rows)
        doc = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def comparable_with(self, other: Recipe) -> str | None:
        """Why two recipes cannot be scored on the same rows, or None when they can."""
        if self.feature_schema_hash != other.feature_schema_hash:
            return "it uses another feature schema"
        if self.label_definition != other.label_definition:
            return "it predicts another label"
        return None

    def training_positions(self, n_rows: int) -> np.ndarray | None:
        """Sorted positions of the rows every fit may train on (a prefix of them for a block
        that ends earlier), or None for all rows. Seeded by the LightGBM seed."""
        if self.max_training_rows is None or n_rows <= self.max_training_rows:
            return None
        rng = np.random.default_rng(int(self.params.get("seed", 0)))
        return np.sort(rng.choice(n_rows, size=self.max_training_rows, replace=False))

    def training_sample(self, data: LabelledData) -> LabelledData:
        """The rows a fit on `data` trains on: all of them, or the recipe's seeded sample."""
        return data.take(self.training_positions(len(data.X)))

    def fit(self, data: LabelledData) -> lgb.Booster:
        sample = self.training_sample(data)
        return train_model(sample.X, sample.y, self.params, self.num_boost_round)


def walk_forward_predictions(
    recipe: Recipe, data: LabelledData, windows: Windows, *, sample: LabelledData | None = None
) -> pd.Series:
    """Out-of-sample P(up) for every labelled row of the evaluation window, block by block;
    `sample` is the recipe's training sample of `data` when the caller has drawn it already.

    Block k's model sees only rows dated at or before its `train_end` (horizon dates before the
    block, so no training label reaches into it); nothing it predicts was ever trained on.
    The rows are binned once, not once per block: every block trains on a subset of one
    LightGBM Dataset of all labelled rows whose bin boundaries come from the first block's
    training rows, which precede the whole evaluation window, so no block's bins see its
    future (its trees differ slightly from a fit that re-bins its own rows).
    """
    tests = [(block, data.within(block.test)) for block in windows.blocks]
    tests = [(block, test) for block, test in tests if not test.X.empty]
    if not tests:
        raise ValueError("the evaluation window has no labelled rows to predict")
    params = with_threads(recipe.params)
    sample = recipe.training_sample(data) if sample is None else sample
    first = sample.until(windows.blocks[0].train_end)
    bins = lgb.Dataset(first.X, label=np.asarray(first.y), params=params).construct()
    binned = lgb.Dataset(sample.X, label=np.asarray(sample.y), reference=bins, params=params)
    binned.construct()
    parts = []
    for block, test in tests:
        positions = sample.positions_until(block.train_end)  # LightGBM takes any int sequence
        rows = binned.subset(positions, params=params)  # type: ignore[arg-type]
        booster = lgb.train(params, rows, num_boost_round=recipe.num_boost_round)
        parts.append(pd.Series(predict_up_proba(booster, test.X), index=test.X.index))
    return pd.concat(parts).rename("p_up")
