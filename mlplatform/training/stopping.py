"""When more trials stop paying: a study stops once its best value has not moved by more than
the cross-validation's own standard error over the last few trials.

Measured on synthetic daily bars (benchmarks/bench_tuning.py): the later trials of a 50-trial
study improve the CV log loss by less than the CV's standard error and do not carry out of sample,
while costing most of the study's CPU. Built from Optuna's terminator, torch-free: the improvement
is how far the best value moved over a window of finished trials (BestValueMovement, in the
objective's units), the error is CrossValidationErrorEvaluator's standard error of the best trial's
fold scores (reported by the objective with report_cross_validation_scores). Optuna's default
regret-bound evaluator needs torch, which the platform does not install.

`optuna.terminator` is deprecated since Optuna 4.9 and due for removal in 6.0: everything that
touches it is in this module.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.terminator import (
    BaseImprovementEvaluator,
    CrossValidationErrorEvaluator,
    Terminator,
    report_cross_validation_scores,
)
from optuna.trial import FrozenTrial, TrialState

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class BestValueMovement(BaseImprovementEvaluator):
    """How far the study's best value moved over its last `window` finished (complete or pruned)
    trials; infinite while the study has too few trials to say."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"the stagnation window must be >= 1 trial, got {window}")
        self.window = window

    def evaluate(self, trials: list[FrozenTrial], study_direction: StudyDirection) -> float:
        finished = sorted((t for t in trials if t.state in FINISHED), key=lambda t: t.number)
        if len(finished) <= self.window:
            return math.inf
        pick = max if study_direction == StudyDirection.MAXIMIZE else min
        # A pruned trial's value is only its last intermediate value: complete trials count.
        before = [t.value for t in finished[: -self.window] if _complete(t) and t.value is not None]
        now = [t.value for t in finished if _complete(t) and t.value is not None]
        if not before:
            return math.inf
        return abs(pick(now) - pick(before))


def report_fold_scores(trial: optuna.Trial, fold_values: Sequence[float]) -> None:
    """Record a trial's fold scores where CrossValidationErrorEvaluator reads them (>= 2 folds)."""
    if len(fold_values) < 2:
        return  # one fold has no standard error: the study then never stops for stagnation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the terminator's deprecation notice
        report_cross_validation_scores(trial, list(fold_values))


class StopWhenStagnant:
    """A study callback: stop the study when its best value moved by less than one CV standard
    error over the last `window` finished trials (`stopped` says whether it did)."""

    def __init__(self, window: int) -> None:
        self.window = window
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._error = CrossValidationErrorEvaluator()
            self._terminator = Terminator(
                improvement_evaluator=BestValueMovement(window),
                error_evaluator=self._error,
                min_n_trials=1,
            )
        self.stopped = False

    def should_stop(self, study: optuna.Study) -> bool:
        try:
            return self._terminator.should_terminate(study)
        except ValueError as exc:  # e.g. a best trial from before fold scores were reported
            logger.debug("no stagnation verdict: %s", exc)
            return False

    def cv_noise(self, study: optuna.Study) -> float:
        """The standard error the rule compares against: the best trial's CV standard error
        (NaN when it reported no fold scores)."""
        try:
            return float(self._error.evaluate(study.trials, study.direction))
        except (AssertionError, ValueError):  # no complete trial, or no fold scores
            return math.nan

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.should_stop(study):
            self.stopped = True
            study.stop()


def _complete(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE
