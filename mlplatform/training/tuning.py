"""Optuna hyperparameter search over purged walk-forward folds, resumable on any SQLAlchemy storage.

Objective: the mean out-of-fold binary log loss over the folds, each fold trained with LightGBM
early stopping on its test block. Using the test block for early stopping makes every fold score
slightly optimistic, but equally so for every trial and for the default-params baseline, so the
comparison is fair; the honest number comes later from the backtest window, which tuning never
sees. The final model is trained without early stopping for `best_num_boost_round` rounds.

Library facts (DESIGN.md): Optuna 5's TPESampler is multivariate with constant_liar by default;
LightGBMPruningCallback lives in optuna_integration and its valid_name must match our valid set's
name; an lgb.Dataset must not be shared between threads. The study runs its trials one after the
other (`optimize(n_jobs=1)`; LightGBM uses the cores), so each fold's Datasets are binned once per
study and reused by every trial, as optuna_integration's LightGBMTuner does.

Cost (500 tickers x 10 years, 1.2 M dev rows): one trial on every dev row took about 29 s, 50
trials about 25 minutes. Tuning therefore trains each fold on a seeded subset of tickers (every
date of each, so the time structure and the purged folds are untouched) of at most
`max_train_rows` rows and scores it on at most `max_test_rows` rows of the same tickers. The
subset only ranks hyperparameters; the staging model trains on every dev row.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import LightGBMPruningCallback
from sqlalchemy.engine import make_url

from mlplatform import config
from mlplatform.data.codes import level_codes
from mlplatform.evaluation.backtest import position, strategy_returns
from mlplatform.evaluation.metrics import sharpe_ratio
from mlplatform.features.layout import values_on
from mlplatform.parallel import cores
from mlplatform.training.model import with_threads
from mlplatform.training.search_space import (
    BASE_PARAMS,
    DEFAULT_PARAMS,
    NOISY_DAILY_PRIOR,
    search_space_subset,
    suggest_params,
    to_lgb_params,
)
from mlplatform.training.splits import Fold, rows_for
from mlplatform.training.stopping import StopWhenStagnant, report_fold_scores
from mlplatform.training.study_storage import launch_lock, make_storage

logger = logging.getLogger(__name__)

VALID_NAME = "oof"  # the name of each fold's validation set; the pruning callback must match it
METRIC = "binary_logloss"
# Report to the pruner every few rounds, not every round: each report is one committed write to
# the study's database (about 5 ms on SQLite), which on small data costs more than the round.
REPORT_INTERVAL = 5


class TuningError(RuntimeError):
    """The study produced no usable trial. `first_error` is the first trial's exception, if any."""

    def __init__(self, message: str, first_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.first_error = first_error


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial, handed to `trial_callback` (e.g. to log a nested MLflow run)."""

    number: int
    state: str  # "COMPLETE" | "PRUNED" | "FAIL"
    params: dict[str, Any]  # the sampled (search-space) values
    value: float | None
    boosting_rounds: int
    duration_s: float
    fold_values: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class TuningResult:
    """What a study produced. Counts, rounds and duration cover the trials run by *this* call;
    best_* cover the whole study (a resumed study keeps its earlier best)."""

    best_params: dict[str, Any]  # full LightGBM params (BASE_PARAMS + tuned), ready for train_model
    best_value: float
    default_value: float  # the same objective with DEFAULT_PARAMS on the same folds
    n_complete: int
    n_pruned: int
    n_failed: int
    duration_s: float
    param_importances: dict[str, float]
    boosting_rounds_total: int
    best_num_boost_round: int
    first_error: str | None
    best_trial_number: int
    best_trial_params: dict[str, Any]  # the search-space values of the best trial
    default_num_boost_round: int
    n_trials_in_study: int  # every trial the study holds, in any state
    # The study's complete and pruned trials: the configurations whose scores were seen, i.e.
    # the Deflated Sharpe's number of trials (failed and lost trials scored nothing).
    n_trials_tried: int
    study_name: str
    # Why this call stopped: "stagnation" (the best value moved less than cv_noise over the last
    # stagnation_trials trials), "trial_limit", "time_limit", or "workers_lost" (dead workers
    # could not all be replaced).
    stop_reason: str
    cv_noise: float  # the best trial's CV standard error the stop rule compared against (or NaN)
    # What this call enqueued to run first: "production" (its params), "prior" (a new study
    # without production), or "none" (a resumed study, or no prior).
    start_point: str
    # Trials whose worker process died under them (failed at once and re-queued), how many
    # re-queued trials ran in this call, and how many workers were started in place of dead ones.
    n_lost: int
    n_retried: int
    workers_replaced: int
    # What tuning trained on per fold (a seeded ticker subset when a row cap applied).
    tuning_train_rows: list[int] = field(default_factory=list)
    tuning_test_rows: list[int] = field(default_factory=list)
    tuning_tickers: list[int] = field(default_factory=list)
    dev_rows: int = 0
    # Per-period (daily) out-of-fold long/short Sharpe of every complete trial of the study that
    # has one (run_study(returns=...)): the V[SR_n] input of the backtest's Deflated Sharpe.
    trial_sharpes: list[float] = field(default_factory=list)

    @property
    def tuning_rows(self) -> int:
        """Training rows summed over the folds (each fold's row count once)."""
        return int(sum(self.tuning_train_rows))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _FoldArrays:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_tickers: int  # tickers the fold's (possibly sampled) rows come from
    # With run_study(returns=...): the test rows' strategy returns and (date, ticker) index.
    test_returns: np.ndarray | None = None
    test_index: pd.MultiIndex | None = None


@dataclass
class _FoldData:
    """A fold's Datasets, binned on first use and reused by every later trial (sequential only:
    a Dataset shared between threads segfaults, DESIGN.md)."""

    arrays: _FoldArrays
    feature_names: list[str]
    dataset_params: dict[str, Any]
    _train: lgb.Dataset | None = None
    _valid: lgb.Dataset | None = None

    def datasets(self) -> tuple[lgb.Dataset, lgb.Dataset]:
        if self._train is None or self._valid is None:
            a = self.arrays
            self._train = lgb.Dataset(
                a.X_train,
                label=a.y_train,
                feature_name=self.feature_names,
                params=dict(self.dataset_params),
                free_raw_data=False,
            )
            self._valid = lgb.Dataset(
                a.X_test, label=a.y_test, reference=self._train, free_raw_data=False
            )
        return self._train, self._valid


@dataclass(frozen=True)
class CVScore:
    value: float
    fold_values: list[float]
    best_iterations: list[int]
    boosting_rounds: int
    # Per fold, P(up) on its test block at the best iteration (only with keep_predictions=True).
    oof_proba: list[np.ndarray] = field(default_factory=list)


def validate_tuning_args(
    *, n_trials: int, timeout_s: float, pruner: str, seed: int | None = None, workers: int = 1
) -> None:
    """Refuse bad settings before any work (the Dagster layer calls this first, too)."""
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float | np.number)
        or math.isnan(timeout_s)
        or timeout_s <= 0
    ):
        raise ValueError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    if pruner not in config.PRUNERS:
        raise ValueError(f"pruner must be one of {config.PRUNERS}, got {pruner!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")


@dataclass(frozen=True)
class RowSample:
    """What each fold tunes on: a `seed`ed subset of whole tickers of at most `max_train_rows`
    training and `max_test_rows` test rows (None = every row). Keep it fixed within one study,
    or its values mix samples."""

    max_train_rows: int | None = config.TUNING.max_tuning_rows
    max_test_rows: int | None = config.TUNING.max_tuning_test_rows
    seed: int = config.TUNING.seed

    def __post_init__(self) -> None:
        for name, cap in (
            ("max_train_rows", self.max_train_rows),
            ("max_test_rows", self.max_test_rows),
        ):
            if cap is not None and (isinstance(cap, bool) or int(cap) != cap or cap < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {cap!r}")

    @property
    def capped(self) -> bool:
        return self.max_train_rows is not None or self.max_test_rows is not None


@dataclass(frozen=True)
class StudySpec:
    """One call of one Optuna study: which study, how many trials for how long, on which rows.

    The first trial is `warm_start_params` (e.g. production's params) or else `prior` (None: the
    sampler's first draw), enqueued unless an identical trial is already in the study. The study
    stops early once its best value moved by less than one CV standard error over the last
    `stagnation_trials` finished trials (None: always run n_trials); n_trials and timeout_s are
    upper limits. `workers` > 1 fans the trials out to that many supervised processes on the
    shared study (each with its own sampler seed, worker_seed). `cost_bps` (one way) prices the
    long/short strategy whose out-of-fold Sharpe each trial records when the study is given
    returns. Refused at construction, before any work, when a value is bad.
    """

    name: str
    storage_url: str
    n_trials: int = config.TUNING.n_trials
    timeout_s: float = config.TUNING.timeout_s
    pruner: str = config.TUNING.pruner
    seed: int = config.TUNING.seed
    workers: int = config.TUNING.workers
    warm_start_params: Mapping[str, Any] | None = None
    prior: Mapping[str, Any] | None = field(default_factory=lambda: dict(NOISY_DAILY_PRIOR))
    stagnation_trials: int | None = config.TUNING.stagnation_trials
    rows: RowSample = field(default_factory=RowSample)
    num_boost_round: int = config.TUNING.num_boost_round
    early_stopping_rounds: int = config.TUNING.early_stopping_rounds
    cost_bps: float = config.BACKTEST.cost_bps
    heartbeat_interval_s: int = config.TUNING.heartbeat_interval_s

    def __post_init__(self) -> None:
        validate_tuning_args(
            n_trials=self.n_trials,
            timeout_s=self.timeout_s,
            pruner=self.pruner,
            seed=self.seed,
            workers=self.workers,
        )
        if self.workers > 1 and ":memory:" in self.storage_url:
            raise ValueError(
                f"workers={self.workers} need a storage they share, not {self.storage_url!r}"
            )
        if not self.name:
            raise ValueError("study_name must be a non-empty string")
        window = self.stagnation_trials
        if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
            raise ValueError(f"stagnation_trials must be None or an integer >= 1, got {window!r}")

    def stop_rule(self) -> StopWhenStagnant | None:
        """The early-stopping callback of this study (a fresh one per process), or None."""
        return None if self.stagnation_trials is None else StopWhenStagnant(self.stagnation_trials)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """The Optuna pruner for a config.PRUNERS name."""
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.TUNING.pruner_startup_trials,
            n_warmup_steps=config.TUNING.pruner_warmup_steps,
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, config.TUNING.pruner_warmup_steps),
            max_resource="auto",
            reduction_factor=3,
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {config.PRUNERS}, got {name!r}")


def _raise_if_storage_lost(storage_url: str, exc: BaseException) -> None:
    """Optuna's own words for a vanished database are "Should not reach." or a failed commit:
    name the storage instead. Other errors (a locked database) pass through to be retried."""
    url = make_url(storage_url)
    where = url.render_as_string(hide_password=True)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).expanduser().exists():
        raise TuningError(
            f"the Optuna study storage {where} disappeared while the study ran (its database "
            "file was deleted or moved); run tuning again to start a new study"
        ) from exc
    if isinstance(exc, AssertionError):
        raise TuningError(
            f"the Optuna study storage {where} is in a state Optuna cannot read "
            f"({type(exc).__name__}: {exc}); was it changed or removed during the study?"
        ) from exc


def _ticker_prefix(
    rank: np.ndarray, codes: np.ndarray, mask: np.ndarray, max_rows: int | None
) -> int:
    """How many tickers, taken in `rank` order, fit into `max_rows` rows of `mask` (at least 1)."""
    n_tickers = len(rank)
    if max_rows is None or int(mask.sum()) <= max_rows:
        return n_tickers
    per_rank = np.bincount(rank[codes[mask]], minlength=n_tickers)
    return max(1, int(np.searchsorted(np.cumsum(per_rank), max_rows, side="right")))


def _fold_arrays(
    X: pd.DataFrame,
    y: pd.Series,
    folds: Sequence[Fold],
    rows: RowSample,
    returns: pd.Series | None = None,
) -> list[_FoldArrays]:
    """Per-fold numpy arrays, sliced once and shared read-only by every trial.

    With a row cap, a fold keeps the first k tickers of one seeded permutation (the same order in
    every fold), k as large as the cap allows, with every date of each: sampling by ticker keeps
    each series whole and leaves the purged, embargoed date split exactly as it was. The test
    block keeps a (shorter or equal) prefix of the same order: only tickers the fold trained on.
    """
    if len(X) != len(y) or not X.index.equals(y.index):
        raise ValueError("X and y must have the same (date, ticker) index")
    if not folds:
        raise ValueError("folds is empty")
    # LightGBM's binary objective silently takes any label > 0 as "up": refuse anything but 0/1.
    if y.isna().any() or not set(np.unique(y.to_numpy())) <= {0, 1}:
        raise ValueError(f"y must hold only 0 and 1, got values {sorted(set(y.dropna()))[:5]}")
    values = X.to_numpy(dtype=np.float32)
    ret = None if returns is None else values_on(returns, X.index)
    labels = y.to_numpy()
    if "ticker" in (X.index.names or []):
        codes, uniques = level_codes(X.index, "ticker")
    else:  # no ticker level: nothing to sample by
        codes, uniques = np.zeros(len(X), dtype=np.intp), np.array(["all"])
    order = np.random.default_rng(int(rows.seed)).permutation(len(uniques))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    arrays: list[_FoldArrays] = []
    for k, fold in enumerate(folds):
        train = rows_for(X.index, fold.train_dates)
        test = rows_for(X.index, fold.test_dates)
        if not train.any() or not test.any():
            raise ValueError(f"fold {k} has no rows in X (train {train.sum()}, test {test.sum()})")
        n_train = _ticker_prefix(rank, codes, train, rows.max_train_rows)
        n_test = min(n_train, _ticker_prefix(rank, codes, test, rows.max_test_rows))
        train = train & (rank[codes] < n_train) if n_train < len(uniques) else train
        test = test & (rank[codes] < n_test) if n_test < len(uniques) else test
        if not train.any() or not test.any():
            raise ValueError(
                f"fold {k}: the first {n_train} / {n_test} sampled tickers have no rows "
                f"(train {train.sum()}, test {test.sum()})"
            )
        sampled = _FoldArrays(
            values[train],
            labels[train],
            values[test],
            labels[test],
            n_tickers=len(np.unique(codes[train])),
            test_returns=None if ret is None else ret[test],
            test_index=None if ret is None else X.index[test],
        )
        for part in (sampled.X_train, sampled.y_train, sampled.X_test, sampled.y_test):
            part.flags.writeable = False
        arrays.append(sampled)
    return arrays


class _RoundCounter:
    """Counts boosting rounds actually trained, also when a trial is pruned mid-fold."""

    order = -100  # LightGBM runs callbacks by `order`: count before the pruner can raise

    def __init__(self) -> None:
        self.rounds = 0

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        self.rounds += 1


def cross_validate(
    params: Mapping[str, Any],
    folds: Sequence[_FoldData],
    spec: StudySpec,
    *,
    pruned_by: optuna.Trial | None = None,
    counter: _RoundCounter | None = None,
    keep_predictions: bool = False,
) -> CVScore:
    """Mean out-of-fold log loss of `params` over the folds, early stopping on each test block
    (`spec`'s round limits); `pruned_by` reports the first fold's rounds to that trial's pruner."""
    counter = counter or _RoundCounter()
    fold_values: list[float] = []
    best_iterations: list[int] = []
    oof_proba: list[np.ndarray] = []
    for k, fold in enumerate(folds):
        train_set, valid_set = fold.datasets()  # binned once per study; trials run sequentially
        callbacks: list[Callable[..., None]] = [
            counter,
            lgb.early_stopping(spec.early_stopping_rounds, first_metric_only=True, verbose=False),
        ]
        if pruned_by is not None and k == 0:
            # Intermediate values = the first fold's log loss per boosting round. The median
            # pruner compares a trial's best value so far with other trials' values at the same
            # step, so a step must mean the same thing in every trial: "round i of fold 0" does.
            # Cumulative steps across folds would mix folds with different loss levels (the
            # best-so-far of fold 0 would then be compared with fold 1's median) and misprune.
            # Fold 0 is the cheapest (smallest training set), and a trial pruned there skips
            # every later fold, which is where the saving comes from.
            callbacks.append(
                LightGBMPruningCallback(
                    pruned_by, METRIC, valid_name=VALID_NAME, report_interval=REPORT_INTERVAL
                )
            )
        booster = lgb.train(
            dict(params),
            train_set,
            num_boost_round=spec.num_boost_round,
            valid_sets=[valid_set],
            valid_names=[VALID_NAME],
            callbacks=callbacks,
        )
        value = float(booster.best_score[VALID_NAME][METRIC])
        if not math.isfinite(value):
            raise ValueError(f"fold {k}: out-of-fold log loss is {value}")
        fold_values.append(value)
        best_iterations.append(int(booster.best_iteration) or booster.current_iteration())
        if keep_predictions:
            oof_proba.append(
                np.asarray(
                    booster.predict(
                        fold.arrays.X_test,
                        num_iteration=best_iterations[-1],
                        num_threads=params["num_threads"],
                    )
                )
            )
    return CVScore(
        value=float(np.mean(fold_values)),
        fold_values=fold_values,
        best_iterations=best_iterations,
        boosting_rounds=counter.rounds,
        oof_proba=oof_proba,
    )


def oof_sharpe(
    folds: Sequence[_FoldArrays], oof_proba: Sequence[np.ndarray], cost_bps: float
) -> float:
    """Per-period (daily) Sharpe of the backtest's long/short strategy on the folds' test blocks.

    Position +1 if P(up) > 0.5 else -1, equal-weight daily mean over the tickers, the round trip
    charged every day: backtest.strategy_returns on the out-of-fold predictions, the test blocks
    concatenated. Rows without a forward return are left out. NaN when nothing is left.
    """
    if len(folds) != len(oof_proba):
        raise ValueError(f"{len(folds)} folds but {len(oof_proba)} prediction arrays")
    returns = [f.test_returns for f in folds if f.test_returns is not None]
    indexes = [f.test_index for f in folds if f.test_index is not None]
    if not folds or len(returns) != len(folds) or len(indexes) != len(folds):
        raise ValueError("the folds carry no returns (run_study(returns=...))")
    proba = np.concatenate([np.asarray(p, dtype=float) for p in oof_proba])
    ret = np.concatenate(returns)
    index = indexes[0].append(indexes[1:])
    keep = np.isfinite(ret)
    if not keep.any():
        return math.nan
    net, _ = strategy_returns(position(proba[keep], "long_short"), ret[keep], index[keep], cost_bps)
    return sharpe_ratio(net.to_numpy(), 1)


LAUNCHES_ATTR = "mlplatform_launches"  # study user attr: how many run_study calls launched


def worker_seed(seed: int, launch: int, worker: int) -> int:
    """The sampler seed of one worker of one launch on a study: distinct per worker, so parallel
    workers never replay each other's draws, and per launch, so a resume does not replay the
    random start-up draws of the first; never derived from the trial count, which two workers
    started together read alike."""
    return int(np.random.SeedSequence([int(seed), int(launch), int(worker)]).generate_state(1)[0])


def _frozen_to_record(trial: FrozenTrial) -> TrialRecord:
    duration = trial.duration.total_seconds() if trial.duration is not None else 0.0
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.params),
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        boosting_rounds=int(trial.user_attrs.get("boosting_rounds", 0)),
        duration_s=duration,
        fold_values=list(trial.user_attrs.get("fold_values", [])),
        error=trial.user_attrs.get("error"),
    )


def _trial_sharpes(study: optuna.Study) -> list[float]:
    """The finite "oof_sharpe" of every complete trial of the study, in trial order."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values = (t.user_attrs.get("oof_sharpe") for t in complete)
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances (Optuna 5's default PED-ANOVA evaluator: fast, no randomness), or {}
    when there is too little to say (< 2 complete trials)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        result = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial used one and the same value
        logger.warning("parameter importances unavailable: %s", exc)
        return {}
    return {name: float(value) for name, value in result.items()}


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one Optuna worker process needs (picklable): the folds, the study, its share
    (`n_trials` of the study's trials, as worker `worker` of launch `launch`)."""

    arrays: list[_FoldArrays]
    feature_names: list[str]
    study: StudySpec
    launch: int
    worker: int
    n_trials: int
    with_returns: bool

    @property
    def tag(self) -> str:
        """The "worker" user attr of this worker's trials: launch.worker."""
        return worker_tag(self.launch, self.worker)

    def fold_data(self) -> list[_FoldData]:
        threads = threads_per_worker(self.study.workers)
        return _fold_data(self.arrays, self.feature_names, self.study.seed, threads)

    def sampler(self) -> optuna.samplers.TPESampler:
        """This worker's sampler: its own seed, so workers and launches never replay draws."""
        return optuna.samplers.TPESampler(
            seed=worker_seed(self.study.seed, self.launch, self.worker)
        )


def worker_tag(launch: int, worker: int) -> str:
    return f"{launch}.{worker}"


def threads_per_worker(workers: int) -> int:
    """LightGBM threads per worker process, so that the workers together use each core once:
    more would make every trial's OpenMP threads wait on each other."""
    return max(1, cores() // workers)


def _fold_data(
    arrays: Sequence[_FoldArrays], feature_names: list[str], seed: int, num_threads: int
) -> list[_FoldData]:
    # Dataset-level params are fixed for the study (binning does not depend on what is tuned;
    # feature_pre_filter=False lets min_data_in_leaf vary on one binned Dataset).
    dataset_params = with_threads({**BASE_PARAMS, "seed": seed}, num_threads)
    return [_FoldData(a, feature_names, dataset_params) for a in arrays]


def optimize_trials(
    study: optuna.Study,
    spec: WorkerSpec,
    fold_data: Sequence[_FoldData],
    errors: list[BaseException],
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> bool:
    """Run up to `spec.n_trials` trials of `study` in this process, one after the other; whether
    the study's stop rule ended them early."""
    settings = spec.study

    def objective(trial: optuna.Trial) -> float:
        # First, before anything can fail: whoever finds this trial RUNNING knows whose it is.
        trial.set_user_attr("worker", spec.tag)
        counter = _RoundCounter()
        try:
            params = with_threads(
                suggest_params(trial, seed=settings.seed), threads_per_worker(settings.workers)
            )
            score = cross_validate(
                params,
                fold_data,
                settings,
                # without a pruner the reports are pure overhead
                pruned_by=trial if settings.pruner != "none" else None,
                counter=counter,
                keep_predictions=spec.with_returns,
            )
            sharpe = (
                oof_sharpe(spec.arrays, score.oof_proba, settings.cost_bps)
                if spec.with_returns
                else None
            )
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            errors.append(exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            trial.set_user_attr("boosting_rounds", counter.rounds)
        trial.set_user_attr("fold_values", score.fold_values)
        trial.set_user_attr("best_iterations", score.best_iterations)
        report_fold_scores(trial, score.fold_values)  # what the stop rule's CV noise is made of
        if sharpe is not None and math.isfinite(sharpe):
            trial.set_user_attr("oof_sharpe", sharpe)
        return score.value

    rule = settings.stop_rule()
    study.optimize(
        objective,
        n_jobs=1,  # the reused Datasets must not be shared between threads
        n_trials=spec.n_trials,
        timeout=None if math.isinf(settings.timeout_s) else settings.timeout_s,
        catch=(Exception,),
        callbacks=[*callbacks, *([rule] if rule is not None else [])],
    )
    return rule is not None and rule.stopped


def _enqueue_first_trial(study: optuna.Study, spec: StudySpec) -> str:
    """Enqueue production's params (unless the study already holds that trial), else the prior
    on a new study; which of them ("production", "prior"), or "none"."""
    new = not study.get_trials(deepcopy=False)
    for source, params in (("production", spec.warm_start_params), ("prior", spec.prior)):
        first = search_space_subset(params) if params else {}
        if first and (source == "production" or new):
            study.enqueue_trial(first, user_attrs={"first_trial": source}, skip_if_exists=True)
            return source
    return "none"


def _open_study(spec: StudySpec) -> tuple[optuna.Study, int, str]:
    """Create or load the study, count this launch and enqueue its first trial, all under the
    storage's launch lock; (study, launch, start_point)."""
    with launch_lock(spec.storage_url):
        study = optuna.create_study(
            storage=make_storage(spec.storage_url, heartbeat_interval_s=spec.heartbeat_interval_s),
            study_name=spec.name,
            direction="minimize",
            pruner=make_pruner(spec.pruner),
            load_if_exists=True,
        )
        launch = int(study.user_attrs.get(LAUNCHES_ATTR, 0))
        study.set_user_attr(LAUNCHES_ATTR, launch + 1)
        start_point = _enqueue_first_trial(study, spec)
    return study, launch, start_point


@dataclass
class _Finished:
    """The trials this call ran, what they raised, and what became of its workers."""

    trials: list[FrozenTrial]
    errors: list[BaseException]
    stagnated: bool = False  # the stop rule ended the study
    lost: list[int] = field(default_factory=list)  # trials whose worker died under them
    workers_replaced: int = 0

    def count(self, state: TrialState) -> int:
        return sum(t.state == state for t in self.trials)

    @property
    def n_failed(self) -> int:
        """Trials that raised (lost trials are FAIL too, but scored nothing of their own)."""
        return self.count(TrialState.FAIL) - len(self.lost)

    @property
    def n_retried(self) -> int:
        return sum(
            "failed_trial" in t.system_attrs and t.state.is_finished() and t.number not in self.lost
            for t in self.trials
        )

    @property
    def first_error(self) -> str | None:
        return f"{type(self.errors[0]).__name__}: {self.errors[0]}" if self.errors else None


def _run_trials(
    study: optuna.Study,
    worker: WorkerSpec,
    fold_data: Sequence[_FoldData],
    trial_callback: Callable[[TrialRecord], None] | None,
) -> _Finished:
    """Run the trials here (one worker) or in `study.workers` supervised processes; hand each
    finished one to `trial_callback` (whose own failure is logged, never fatal)."""
    spec = worker.study
    finished = _Finished([], [])

    def on_trial_end(_study: optuna.Study, trial: FrozenTrial) -> None:
        finished.trials.append(trial)
        if trial_callback is not None:
            try:
                trial_callback(_frozen_to_record(trial))
            except Exception:  # logging a trial must not abort the search
                logger.exception("trial_callback failed for trial %d", trial.number)

    try:
        if spec.workers == 1:
            study.sampler = worker.sampler()
            finished.stagnated = optimize_trials(
                study, worker, fold_data, finished.errors, [on_trial_end]
            )
        else:
            from mlplatform.training.distributed import fan_out

            fanned = fan_out(worker, spec.workers)
            finished.stagnated = fanned.stagnated
            finished.lost = fanned.lost
            finished.workers_replaced = fanned.replaced
            prefix = f"{worker.launch}."
            for trial in study.get_trials(deepcopy=False):
                if trial.state.is_finished() and trial.user_attrs.get("worker", "").startswith(
                    prefix
                ):
                    on_trial_end(study, trial)
    except Exception as exc:
        _raise_if_storage_lost(spec.storage_url, exc)
        raise
    trial_errors = [t.user_attrs["error"] for t in finished.trials if "error" in t.user_attrs]
    if not finished.errors and trial_errors:  # raised in a worker process: only the message came
        finished.errors.append(RuntimeError(trial_errors[0]))
    return finished


def _best_trial(study: optuna.Study, finished: _Finished) -> FrozenTrial:
    """The study's best trial; TuningError when every trial of this call failed, or none is
    complete."""
    n_pruned, n_failed = finished.count(TrialState.PRUNED), finished.n_failed
    if finished.trials and finished.count(TrialState.COMPLETE) + n_pruned == 0:
        first = finished.errors[0] if finished.errors else None
        raise TuningError(
            f"all {len(finished.trials)} trials of study {study.study_name!r} failed "
            f"({len(finished.lost)} lost with their worker); first error: {finished.first_error}",
            first,
        ) from first
    try:
        return study.best_trial
    except ValueError as exc:
        raise TuningError(
            f"study {study.study_name!r} has no complete trial "
            f"({n_pruned} pruned, {n_failed} failed in this run)"
        ) from exc


def _stop_reason(spec: StudySpec, finished: _Finished, elapsed_s: float) -> str:
    """Why the call stopped (see TuningResult.stop_reason)."""
    if finished.stagnated:
        return "stagnation"
    if len(finished.trials) - len(finished.lost) >= spec.n_trials:
        return "trial_limit"
    if elapsed_s >= spec.timeout_s:
        return "time_limit"
    return "workers_lost"


def _mean_rounds(best_iterations: Sequence[int]) -> int:
    return max(1, round(float(np.mean(best_iterations))))


def run_study(
    X: pd.DataFrame,
    y: pd.Series,
    folds: Sequence[Fold],
    spec: StudySpec,
    *,
    trial_callback: Callable[[TrialRecord], None] | None = None,
    returns: pd.Series | None = None,
) -> TuningResult:
    """Run (or resume) the study `spec.name` in `spec.storage_url` for at most `spec.n_trials`
    more trials, fewer when the study's best value stops moving beyond the CV's noise.

    A trial that raises is recorded FAIL and the study goes on; when every trial of this call
    fails, TuningError carries the first error. `returns` (per-row strategy return aligned to X's
    index, e.g. outcomes' forward_return) makes every complete trial also record "oof_sharpe": the
    per-period Sharpe of the long/short strategy on its out-of-fold predictions, collected in
    `trial_sharpes`. With `spec.workers` > 1 this process supervises the worker processes and
    collects the best trial from the storage after they are done.
    """
    started = time.perf_counter()
    feature_names = [str(c) for c in X.columns]
    arrays = _fold_arrays(X, y, folds, spec.rows, returns)
    fold_data = _fold_data(arrays, feature_names, spec.seed, threads_per_worker(1))
    study, launch, start_point = _open_study(spec)
    worker = WorkerSpec(
        arrays, feature_names, spec, launch, 0, int(spec.n_trials), returns is not None
    )
    finished = _run_trials(study, worker, fold_data, trial_callback)
    stop_reason = _stop_reason(spec, finished, time.perf_counter() - started)
    best = _best_trial(study, finished)
    rule = spec.stop_rule()
    best_value = best.value
    assert best_value is not None  # _best_trial returns a complete trial
    default = cross_validate(with_threads(DEFAULT_PARAMS | {"seed": spec.seed}), fold_data, spec)
    tried = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return TuningResult(
        best_params=to_lgb_params(best.params, seed=spec.seed),
        best_value=float(best_value),
        default_value=default.value,
        n_complete=finished.count(TrialState.COMPLETE),
        n_pruned=finished.count(TrialState.PRUNED),
        n_failed=finished.n_failed,
        duration_s=time.perf_counter() - started,
        param_importances=_importances(study),
        boosting_rounds_total=sum(
            int(t.user_attrs.get("boosting_rounds", 0)) for t in finished.trials
        ),
        best_num_boost_round=_mean_rounds(best.user_attrs.get("best_iterations") or [1]),
        first_error=finished.first_error,
        best_trial_number=best.number,
        best_trial_params=dict(best.params),
        default_num_boost_round=_mean_rounds(default.best_iterations),
        n_trials_in_study=len(study.trials),
        n_trials_tried=len(tried),
        study_name=spec.name,
        stop_reason=stop_reason,
        cv_noise=rule.cv_noise(study) if rule is not None else math.nan,
        start_point=start_point,
        n_lost=len(finished.lost),
        n_retried=finished.n_retried,
        workers_replaced=finished.workers_replaced,
        tuning_train_rows=[len(a.y_train) for a in arrays],
        tuning_test_rows=[len(a.y_test) for a in arrays],
        tuning_tickers=[a.n_tickers for a in arrays],
        dev_rows=len(X),
        trial_sharpes=_trial_sharpes(study),
    )
