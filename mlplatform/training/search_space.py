"""The one place of the LightGBM search space, the fixed base parameters and the default baseline.

Names are LightGBM's canonical ones (min_data_in_leaf, not min_child_samples; lambda_l1, not
reg_alpha), so a params dict goes to `lgb.train` unchanged and hashes the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from mlplatform import config

# Fixed for every model. deterministic + force_row_wise: LightGBM otherwise picks row- or
# column-wise histograms by timing a test run, and the choice can differ between runs; row-wise
# suits our shape (many rows, a few dozen features). feature_pre_filter=False lets
# min_data_in_leaf vary between trials without LightGBM refusing the Dataset. The thread count is
# no part of a model: each fit takes it from the CPUs where it runs (model.with_threads).
BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "boosting_type": "gbdt",
    "deterministic": True,
    "force_row_wise": True,
    "feature_pre_filter": False,
    "seed": config.TUNING.seed,
    "verbosity": -1,
}

# LightGBM's own defaults for the tuned parameters: the "untuned" baseline the study must beat.
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "max_depth": -1,
    "min_data_in_leaf": 20,
    "feature_fraction": 1.0,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "lambda_l1": 0.0,
    "lambda_l2": 0.0,
    "min_gain_to_split": 0.0,
}
DEFAULT_PARAMS: dict[str, Any] = {**BASE_PARAMS, **LIGHTGBM_DEFAULTS}

# The first trial of a new study with no production model to start from (StudySpec.prior), chosen
# by measurement, not taste (benchmarks/bench_prior.py): the three best trials of a 50-trial study
# on each of six synthetic markets (none of them a benchmark's), the sampler's fixed first draw,
# LightGBM's defaults and two hand-written priors, each scored by CV log loss on every market.
# Market 1000's third best, rounded here, gained the most over LightGBM's defaults on the markets
# it did not come from. Depth-2 trees with a split-gain floor: daily bars carry a weak signal, and
# deeper trees or smaller leaves fit their noise.
NOISY_DAILY_PRIOR: dict[str, Any] = {
    "learning_rate": 0.08,
    "num_leaves": 4,
    "max_depth": 2,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.7,
    "bagging_freq": 8,
    "lambda_l1": 1e-8,
    "lambda_l2": 1e-8,
    "min_gain_to_split": 0.2,
}

# Ranges for noisy daily-bar data: small learning rates, shallow trees, big leaves and strong
# regularisation are where the good models live; the upper ends still allow LightGBM's defaults.
SEARCH_SPACE: dict[str, optuna.distributions.BaseDistribution] = {
    "learning_rate": optuna.distributions.FloatDistribution(0.005, 0.3, log=True),
    "num_leaves": optuna.distributions.IntDistribution(4, 128, log=True),
    "max_depth": optuna.distributions.IntDistribution(2, 12),
    "min_data_in_leaf": optuna.distributions.IntDistribution(10, 2000, log=True),
    "feature_fraction": optuna.distributions.FloatDistribution(0.3, 1.0),
    "bagging_fraction": optuna.distributions.FloatDistribution(0.3, 1.0),
    "bagging_freq": optuna.distributions.IntDistribution(1, 10),
    "lambda_l1": optuna.distributions.FloatDistribution(1e-8, 10.0, log=True),
    "lambda_l2": optuna.distributions.FloatDistribution(1e-8, 10.0, log=True),
    "min_gain_to_split": optuna.distributions.FloatDistribution(0.0, 0.5),
}

# Aliases accepted in warm-start params (e.g. a scikit-learn style dict) -> canonical names.
ALIASES: dict[str, str] = {
    "min_child_samples": "min_data_in_leaf",
    "colsample_bytree": "feature_fraction",
    "subsample": "bagging_fraction",
    "subsample_freq": "bagging_freq",
    "reg_alpha": "lambda_l1",
    "reg_lambda": "lambda_l2",
    "min_split_gain": "min_gain_to_split",
    "eta": "learning_rate",
}


def suggest_params(trial: optuna.Trial, *, seed: int | None = None) -> dict[str, Any]:
    """Sample one point of the search space; returns the full LightGBM params dict."""
    sampled: dict[str, Any] = {}
    for name, dist in SEARCH_SPACE.items():
        if isinstance(dist, optuna.distributions.IntDistribution):
            sampled[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        else:
            assert isinstance(dist, optuna.distributions.FloatDistribution)
            sampled[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    return to_lgb_params(sampled, seed=seed)


def to_lgb_params(sampled: Mapping[str, Any], *, seed: int | None = None) -> dict[str, Any]:
    """BASE_PARAMS + the sampled values, with num_leaves capped at what max_depth can hold."""
    params = {**BASE_PARAMS, **dict(sampled)}
    if seed is not None:
        params["seed"] = int(seed)
    depth = int(params.get("max_depth", -1))
    if depth > 0 and "num_leaves" in params:
        params["num_leaves"] = int(min(int(params["num_leaves"]), 2**depth))
    return params


def search_space_subset(params: Mapping[str, Any]) -> dict[str, Any]:
    """The tunable part of a params dict under canonical names, clipped into the search space.

    Used to enqueue a warm start (e.g. production's params). Clipping keeps the point one the
    sampler can learn from; for LightGBM's defaults it changes little: lambda 0 -> 1e-8,
    bagging_freq 0 -> 1 (with bagging_fraction 1.0 still no bagging), max_depth -1 -> 12.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = ALIASES.get(key, key)
        if name not in SEARCH_SPACE:
            continue
        dist = SEARCH_SPACE[name]
        assert isinstance(
            dist, optuna.distributions.IntDistribution | optuna.distributions.FloatDistribution
        )
        if isinstance(dist, optuna.distributions.IntDistribution) and int(value) == -1:
            value = dist.high  # LightGBM's "no limit"
        clipped = min(max(value, dist.low), dist.high)
        is_int = isinstance(dist, optuna.distributions.IntDistribution)
        out[name] = round(float(clipped)) if is_int else float(clipped)
    return out
