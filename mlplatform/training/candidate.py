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
    trained: LabelledData  # the rows the refit learnt from (a sample when the recipe caps them)

    @property
    def training_rows(self) -> int:
        return len(self.trained.X)


def build_candidate(recipe: Recipe, data: LabelledData, windows: Windows) -> Candidate:
    """Walk the recipe forward over the evaluation window, then refit it on every labelled row."""
    refit_rows = data.within(windows.refit)  # every labelled row, when the windows are data's
    trained = recipe.training_sample(refit_rows)
    # the blocks train on prefixes of the same sample: drawn once (100 MB at the 1 M-row cap)
    reused = trained if refit_rows is data else None
    out_of_sample = walk_forward_predictions(recipe, data, windows, sample=reused)
    # the sample is within the cap, so fitting on it trains on exactly these rows
    return Candidate(recipe, windows, recipe.fit(trained), out_of_sample, trained)
