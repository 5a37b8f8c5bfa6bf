"""The staging candidate: a recipe's walk-forward predictions and its refit through the last bar."""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import pandas as pd

from mlplatform.training.dataset import LabelledData, Windows
from mlplatform.training.recipe import Recipe, walk_forward_predictions


@dataclass(frozen=True)
class Candidate:
    recipe: Recipe
    windows: Windows
    booster: lgb.Booster  # trained on every labelled row: what production would serve
    out_of_sample: pd.Series  # walk-forward P(up) over the evaluation window
    training_rows: int  # rows the refit trained on (a sample when the recipe caps them)


def build_candidate(recipe: Recipe, data: LabelledData, windows: Windows) -> Candidate:
    """Walk the recipe forward over the evaluation window, then refit it on every labelled row."""
    out_of_sample = walk_forward_predictions(recipe, data, windows)
    refit = data.within(windows.refit)
    rows = min(len(refit.X), recipe.max_training_rows or len(refit.X))
    return Candidate(recipe, windows, recipe.fit(refit), out_of_sample, rows)
