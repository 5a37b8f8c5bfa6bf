"""The retrain's training decisions, Dagster-free: which study tunes on which rows, what tuning
hands on, the staging recipe built from it, and what staging hands on to the evaluation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.data import fingerprint
from mlplatform.features import LABEL_DEFINITION, feature_schema_hash
from mlplatform.training.dataset import DateWindow, LabelledData, Windows
from mlplatform.training.recipe import Recipe
from mlplatform.training.search_space import BASE_PARAMS
from mlplatform.training.splits import Fold
from mlplatform.training.tuning import RowSample, StudySpec, TrialRecord, TuningResult, run_study


def label_definition(horizon: int) -> str:
    return f"{LABEL_DEFINITION} [horizon={horizon}]"


def study_name(
    model_name: str, prices: pd.DataFrame, development: DateWindow, rows: RowSample
) -> str:
    """One resumable study per model and development data: trial values on other data are not
    comparable, so a retrain on new bars starts a new study (warm-started from production)."""
    name = f"{model_name}:{fingerprint(prices, until=pd.Timestamp(development.end))[:12]}"
    if rows.capped:
        # Trials on another row sample are not comparable either: one study per sample.
        name += f":rows{rows.max_train_rows}x{rows.max_test_rows}"
    return name


def trial_returns(dev: LabelledData, horizon: int) -> pd.Series | None:
    """The returns each trial's out-of-fold long/short Sharpe is taken on (tuning folds only,
    never the backtest window): their dispersion is the V[SR_n] of the evaluation's Deflated
    Sharpe. The backtest trades horizon 1 only, so only then is a trial's Sharpe comparable."""
    return dev.returns_of("forward_return") if horizon == 1 else None


@dataclass(frozen=True)
class TunedParams:
    """The tuned_params asset's value: what staging_model trains with (the best parameters and
    rounds, on the windows tuning planned) and the study facts the registry records."""

    params: dict[str, Any]  # full LightGBM params (BASE_PARAMS + tuned)
    num_boost_round: int
    best_value: float
    default_value: float
    n_trials_total: int  # the Deflated Sharpe's number of trials: every trial scored in the study
    study_name: str
    warm_started: bool
    start_point: str
    # why tuning stopped, what it ran, and the CV noise the stop rule compared against
    stop_reason: str
    cv_noise: float
    n_trials_run: int
    n_trials_pruned: int
    n_trials_failed: int
    n_trials_lost: int
    n_trials_retried: int
    tuning_rows: int
    tuning_train_rows: list[int]
    tuning_test_rows: list[int]
    trial_sharpes: list[float]
    windows: Windows


@dataclass(frozen=True)
class Tuned:
    """What tuning found and on what: the value staging_model reads, and the facts to record."""

    result: TuningResult
    windows: Windows
    n_folds: int
    warm_started: bool
    duration_s: float

    @property
    def trial_sharpe_sd(self) -> float:
        """Per-period SD of the complete trials' out-of-fold Sharpes (NaN: fewer than 2)."""
        sharpes = self.result.trial_sharpes
        return float(np.std(sharpes, ddof=1)) if len(sharpes) >= 2 else math.nan

    def value(self) -> TunedParams:
        r = self.result
        return TunedParams(
            params=r.best_params,
            num_boost_round=int(r.best_num_boost_round),
            best_value=float(r.best_value),
            default_value=float(r.default_value),
            n_trials_total=int(r.n_trials_tried),
            study_name=r.study_name,
            warm_started=self.warm_started,
            start_point=r.start_point,
            stop_reason=r.stop_reason,
            cv_noise=float(r.cv_noise),
            n_trials_run=r.n_complete + r.n_pruned + r.n_failed + r.n_lost,
            n_trials_pruned=r.n_pruned,
            n_trials_failed=r.n_failed,
            n_trials_lost=r.n_lost,
            n_trials_retried=r.n_retried,
            tuning_rows=r.tuning_rows,
            tuning_train_rows=r.tuning_train_rows,
            tuning_test_rows=r.tuning_test_rows,
            trial_sharpes=r.trial_sharpes,
            windows=self.windows,
        )

    def summary(self) -> str:
        r = self.result
        return (
            f"best CV log loss {r.best_value:.5f} vs default {r.default_value:.5f} "
            f"(CV noise {r.cv_noise:.5f}); {r.n_complete} complete, {r.n_pruned} pruned, "
            f"{r.n_failed} failed, {r.n_lost} lost ({r.n_retried} retried); "
            f"stopped by {r.stop_reason.replace('_', ' ')}"
        )


def tune(
    data: LabelledData,
    windows: Windows,
    folds: Sequence[Fold],
    spec: StudySpec,
    *,
    trial_callback: Callable[[TrialRecord], None] | None = None,
) -> Tuned:
    """Run `spec`'s study on the development window's `folds` (never the evaluation window)."""
    dev = data.within(windows.development)
    started = time.perf_counter()
    result = run_study(
        dev.X,
        dev.y,
        folds,
        spec,
        trial_callback=trial_callback,
        returns=trial_returns(dev, windows.horizon),
    )
    warm = spec.warm_start_params is not None
    return Tuned(result, windows, len(folds), warm, time.perf_counter() - started)


def tuned_recipe(
    params: Mapping[str, Any],
    num_boost_round: int,
    *,
    seed: int,
    horizon: int,
    max_training_rows: int | None,
) -> Recipe:
    """The staging recipe: tuning's parameters and rounds on the current features and label."""
    return Recipe(
        params={**BASE_PARAMS, **params, "seed": seed},
        num_boost_round=int(num_boost_round),
        feature_schema_hash=feature_schema_hash(),
        label_definition=label_definition(horizon),
        max_training_rows=max_training_rows,
    )


@dataclass(frozen=True)
class StagingModel:
    """The staging_model asset's value: the registered version, and the recipe, windows and
    walk-forward predictions backtest_report scores it on."""

    name: str
    version: str
    semver: str
    uri: str  # models:/<name>/<version>
    run_id: str
    recipe: Recipe
    windows: Windows
    out_of_sample: pd.Series  # walk-forward P(up) over the evaluation window
