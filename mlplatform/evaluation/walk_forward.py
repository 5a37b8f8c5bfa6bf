"""The candidate's evaluation: staging's and production's recipes scored by the same walk-forward
on the same rows of the evaluation window, with the naive baselines beside them.

Every model column is out of sample: the recipes' blocks come from `walk_forward_predictions`,
and the baselines are walked forward too (the training majority of block k is the up-rate of
the labelled rows its models could see).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mlplatform.evaluation.backtest import (
    BacktestResult,
    naive_rules,
    previous_direction,
    run_backtest,
    up_rate,
)
from mlplatform.features import forward_returns, hold_returns
from mlplatform.promotion.criteria import PRODUCTION, STAGING
from mlplatform.training import LabelledData, Recipe, Windows, walk_forward_predictions

BAYES = "bayes_optimal"  # the true P(up), known only for a synthetic market


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
class CandidateEvaluation:
    result: BacktestResult
    production_left_out_because: str | None


def evaluate_candidate(
    data: LabelledData,
    windows: Windows,
    prices: pd.DataFrame,
    *,
    staging: pd.Series,
    production: Recipe | None,
    production_left_out_because: str | None,
    cost_bps: float,
    n_trials: int,
    trial_sharpes: Sequence[float],
    truth: pd.Series | None = None,
) -> CandidateEvaluation:
    """Score staging's walk-forward predictions beside production's recipe (walked forward on the
    same blocks when comparable) and the baselines; `truth` adds the Bayes-optimal rule."""
    evaluated = data.within(windows.evaluation)
    predictions = {STAGING: staging}
    if production is not None and production_left_out_because is None:
        predictions[PRODUCTION] = walk_forward_predictions(production, data, windows)
    predictions.update(walk_forward_baselines(data, windows, prices))
    if truth is not None:
        p_up = truth.reindex(evaluated.X.index)
        if p_up.notna().all():  # the best any model could do on these rows
            predictions[BAYES] = p_up.rename(BAYES)
    result = run_backtest(
        predictions,
        evaluated.y,
        forward_returns(prices, horizon=windows.horizon),
        cost_bps=cost_bps,
        n_trials={STAGING: n_trials},
        trial_sharpes=list(trial_sharpes),
        hold_returns=hold_returns(prices, horizon=windows.horizon),
        horizon=windows.horizon,
    )
    return CandidateEvaluation(result, production_left_out_because)
