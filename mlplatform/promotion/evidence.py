"""The evidence the gate reads: staging's and production's recipes scored by the same
walk-forward on the same rows of the evaluation window, with the naive baselines beside them.

Here, above both training (which walks a recipe forward) and evaluation (which scores what it
is given), so neither package imports the other's way back.

Every model column is out of sample: the recipes' blocks come from `walk_forward_predictions`,
and the baselines are walked forward too (the training majority of block k is the up-rate of
the labelled rows its models could see).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.data.schema import in_canonical_order
from mlplatform.evaluation.backtest import (
    BacktestResult,
    BacktestSpec,
    naive_rules,
    previous_direction,
    run_backtest,
    up_rate,
)
from mlplatform.evaluation.slices import SliceKeys
from mlplatform.features.layout import values_on
from mlplatform.promotion.criteria import PRODUCTION, STAGING
from mlplatform.promotion.decision import comparable_production
from mlplatform.training import (
    LabelledData,
    Recipe,
    Windows,
    recipe_from_tags,
    walk_forward_predictions,
)

BAYES = "bayes_optimal"  # the true P(up), known only for a synthetic market


def bars_for_window(prices: pd.DataFrame, start: date) -> pd.DataFrame:
    """The bars on or after `start` and each ticker's last bar before it: all that the previous
    directions of rows from `start` on read (a third of a 10-year history), so the baselines'
    sorts and groupings scale with the window, not the history."""
    if not in_canonical_order(prices):  # the tail logic below needs it: keep everything
        return prices
    keep = prices["date"].to_numpy() >= np.datetime64(start)
    # sorted by ticker then date, so a ticker's kept bars are its tail and the row before the
    # tail is its last bar before `start` (or another ticker's last bar: one harmless extra row)
    keep[:-1] |= keep[1:]
    return prices if keep.all() else prices[keep]


def walk_forward_baselines(
    data: LabelledData, windows: Windows, prices: pd.DataFrame
) -> dict[str, pd.Series]:
    """Each naive rule, block by block, from what a model of that block could have known."""
    # once for the whole window, sliced per block: it sorts and groups every bar
    previous = previous_direction(prices, data.within(windows.evaluation).X.index)
    dates = previous.index.get_level_values("date")
    parts: dict[str, list[pd.Series]] = {}
    for block in windows.blocks:
        in_block = block.test.contains(dates)
        if not in_block.any():
            continue
        rate = up_rate(data.until(block.train_end).y)
        for name, series in naive_rules(rate, previous[in_block]).items():
            parts.setdefault(name, []).append(series)
    return {name: pd.concat(series).rename(name) for name, series in parts.items()}


@dataclass(frozen=True)
class Contenders:
    """The models the evaluation scores beside the naive baselines."""

    staging: pd.Series  # staging's walk-forward P(up) over the evaluation window
    n_trials: int  # trials of the study that tuned staging: the Deflated Sharpe's N
    trial_sharpes: Sequence[float]  # their out-of-fold Sharpes: the Deflated Sharpe's V[SR_n]
    production: Recipe | None = None  # walked forward on the same blocks unless left out
    production_left_out_because: str | None = None

    @classmethod
    def from_registry_tags(
        cls,
        staging: pd.Series,
        staging_recipe: Recipe,
        staging_tags: Mapping[str, str],
        production_tags: Mapping[str, str] | None,
    ) -> Contenders:
        """Staging beside production (None: nothing in production) as their registry versions'
        tags record them; N and the trials' Sharpes come from the study that tuned staging."""
        production = None if production_tags is None else recipe_from_tags(production_tags)
        left_out = (
            None if production_tags is None else comparable_production(staging_recipe, production)
        )
        return cls(
            staging=staging,
            n_trials=int(staging_tags["tuning_trials"]),
            trial_sharpes=json.loads(staging_tags["trial_sharpes"]),
            production=production,
            production_left_out_because=left_out,
        )


@dataclass(frozen=True)
class CandidateEvaluation:
    result: BacktestResult
    production_left_out_because: str | None


@dataclass(frozen=True)
class BacktestReport:
    """The backtest_report asset's value: what promotion_criteria and a person read of one
    evaluation of a staging version."""

    staging_version: str
    staging_semver: str
    production_version: str  # NO_PRODUCTION when nothing was in production
    windows: Windows  # the blocks staging was scored on
    metrics: dict[str, dict[str, float | None]]  # model -> figure (JSON-safe: None, not NaN)
    cost_bps: float  # one way, what the Sharpes were charged
    html: Path
    report_url: str


def evaluate_candidate(
    data: LabelledData,
    windows: Windows,
    prices: pd.DataFrame,
    contenders: Contenders,
    *,
    cost_bps: float,
    truth: pd.Series | None = None,
) -> CandidateEvaluation:
    """Score staging's walk-forward predictions beside production's recipe (walked forward on the
    same blocks when comparable) and the baselines; `truth` adds the Bayes-optimal rule. The
    result's slices set regimes and ticker groups from the bars before the window."""
    evaluated = data.within(windows.evaluation)
    slice_keys = SliceKeys.from_prices(prices, windows.evaluation.start)
    prices = bars_for_window(prices, windows.evaluation.start)
    predictions = {STAGING: contenders.staging}
    left_out = contenders.production_left_out_because
    if contenders.production is not None and left_out is None:
        predictions[PRODUCTION] = walk_forward_predictions(contenders.production, data, windows)
    predictions.update(walk_forward_baselines(data, windows, prices))
    if truth is not None:
        p_up = values_on(truth, evaluated.X.index)
        if not np.isnan(p_up).any():  # the best any model could do on these rows
            predictions[BAYES] = pd.Series(p_up, index=evaluated.X.index, name=BAYES)
    result = run_backtest(
        predictions,
        evaluated.y,
        evaluated.returns_of("forward_return"),
        BacktestSpec(
            cost_bps=cost_bps,
            n_trials={STAGING: contenders.n_trials},
            trial_sharpes=list(contenders.trial_sharpes),
            horizon=windows.horizon,
        ),
        hold_returns=evaluated.returns_of("hold_return"),
        slice_keys=slice_keys,
    )
    return CandidateEvaluation(result, left_out)
