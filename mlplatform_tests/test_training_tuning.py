"""Optuna study over walk-forward folds: pruning, resume, warm start, the prior, the stop rule,
failures, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from mlplatform.training import plan_windows, search_space, tuning
from mlplatform.training.model import predict_up_proba, train_model
from mlplatform.training.retrain import Tuned
from mlplatform.training.splits import Fold, walk_forward_folds
from mlplatform.training.stopping import BestValueMovement
from mlplatform.training.tuning import (
    RowSample,
    StudySpec,
    TrialRecord,
    TuningError,
    TuningResult,
    run_study,
    validate_tuning_args,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)

# Small and quick: the contract's round limits are for real data, the logic is the same.
FAST = {"num_boost_round": 120, "early_stopping_rounds": 15}


def small_frame(
    n_dates: int = 260, n_tickers: int = 8, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """(date, ticker) float32 features and an int8 label that weakly depends on f0 and f1."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_dates)
    tickers = [f"T{i:02d}" for i in range(n_tickers)]
    idx = pd.MultiIndex.from_product([dates, tickers], names=["date", "ticker"])
    X = pd.DataFrame(
        rng.standard_normal((len(idx), 5)).astype(np.float32),
        index=idx,
        columns=[f"f{i}" for i in range(5)],
    )
    logit = 0.35 * X["f0"].to_numpy() + 0.25 * np.sin(2.0 * X["f1"].to_numpy())
    label = (rng.random(len(idx)) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return X, pd.Series(label, index=idx, name="label")


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, list[Fold]]:
    X, y = small_frame()
    dates = X.index.get_level_values("date").unique()
    folds = walk_forward_folds(dates, n_folds=3, horizon=1, embargo_days=3, min_train_days=110)
    return X, y, folds


ALL_ROWS = RowSample(max_train_rows=None, max_test_rows=None)


def _study(
    data: tuple[pd.DataFrame, pd.Series, list[Fold]],
    url: str,
    trial_callback: Any = None,
    returns: pd.Series | None = None,
    **kwargs: Any,
) -> TuningResult:
    X, y, folds = data
    # Every trial runs unless a test asks for the stop rule: the counts below are exact.
    args: dict[str, Any] = {
        "name": "test",
        "n_trials": 12,
        "timeout_s": 600.0,
        "seed": 7,
        "stagnation_trials": None,
    }
    spec = StudySpec(storage_url=url, **(args | FAST | kwargs))
    return run_study(X, y, folds, spec, trial_callback=trial_callback, returns=returns)


@pytest.fixture(scope="module")
def twin_studies(
    data: tuple[pd.DataFrame, pd.Series, list[Fold]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TuningResult, TuningResult, list[TrialRecord]]:
    """The same 12-trial study twice, in two fresh sqlite files (in a folder not yet made)."""
    records: list[TrialRecord] = []
    root = tmp_path_factory.mktemp("optuna")
    first = _study(
        data, f"sqlite:///{root / 'a' / 'nested' / 's.db'}", trial_callback=records.append
    )
    second = _study(data, f"sqlite:///{root / 'b' / 's.db'}")
    return first, second, records


def test_study_prunes_and_reports_sane_fields(twin_studies) -> None:
    result, _, records = twin_studies
    assert result.n_complete + result.n_pruned + result.n_failed == 12
    assert result.n_pruned >= 1 and result.n_complete >= 5 and result.n_failed == 0
    assert 0.5 < result.best_value < 0.70 and 0.5 < result.default_value < 0.75
    assert result.first_error is None
    assert result.n_trials_in_study == 12
    assert 1 <= result.best_num_boost_round <= FAST["num_boost_round"]
    assert result.best_params["objective"] == "binary" and result.best_params["seed"] == 7
    assert set(result.best_trial_params) == set(search_space.SEARCH_SPACE)
    assert result.param_importances and set(result.param_importances) <= set(
        search_space.SEARCH_SPACE
    )
    # the callback saw every trial, in order, with the rounds it trained
    assert [r.number for r in records] == list(range(12))
    assert sum(r.boosting_rounds for r in records) == result.boosting_rounds_total
    pruned = [r for r in records if r.state == "PRUNED"]
    complete = [r for r in records if r.state == "COMPLETE"]
    assert len(pruned) == result.n_pruned and all(r.value is None for r in pruned)
    assert all(len(r.fold_values) == 3 and r.value is not None for r in complete)
    assert min(r.value for r in complete) == pytest.approx(result.best_value)
    # a pruned trial stopped inside the first fold: fewer rounds than any complete trial
    assert max(r.boosting_rounds for r in pruned) < FAST["num_boost_round"]


def test_same_seed_same_study_and_identical_model(twin_studies, data) -> None:
    first, second, _ = twin_studies
    assert first.best_trial_params == second.best_trial_params
    assert first.best_value == second.best_value
    assert first.boosting_rounds_total == second.boosting_rounds_total
    X, y, _ = data
    a = train_model(X, y, first.best_params, first.best_num_boost_round)
    b = train_model(X, y, second.best_params, second.best_num_boost_round)
    assert a.model_to_string() == b.model_to_string()
    proba = predict_up_proba(a, X[X.columns[::-1]])  # column order does not matter
    assert proba.shape == (len(X),) and ((proba > 0) & (proba < 1)).all()


def test_resume_continues_numbering(data, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    first = _study(data, url, n_trials=3)
    records: list[TrialRecord] = []
    second = _study(data, url, n_trials=2, trial_callback=records.append)
    assert [r.number for r in records] == [3, 4]
    assert second.n_trials_in_study == 5 and first.n_trials_in_study == 3
    assert second.best_value <= first.best_value  # the earlier best is kept
    # a resumed study does not replay the first run's random start-up draws
    study = optuna.load_study(study_name="test", storage=url)
    draws = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(draws)) == 5


def test_warm_start_is_enqueued_once(data, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warm.db'}"
    warm = search_space.DEFAULT_PARAMS | {"num_leaves": 7, "min_child_samples": 40}
    records: list[TrialRecord] = []
    first = _study(data, url, n_trials=2, warm_start_params=warm, trial_callback=records.append)
    expected = search_space.search_space_subset(warm)
    assert records[0].params == expected and records[0].params["min_data_in_leaf"] == 40
    assert first.start_point == "production"  # production's params, not the prior
    # resuming with the same warm start does not run it again
    _study(data, url, n_trials=1, warm_start_params=warm, trial_callback=records.append)
    assert records[2].params != expected


def test_a_first_run_starts_from_the_prior(data, tmp_path: Path) -> None:
    prior = search_space.NOISY_DAILY_PRIOR
    assert search_space.search_space_subset(prior) == prior  # a point of the search space
    records: list[TrialRecord] = []
    result = _study(
        data, f"sqlite:///{tmp_path / 'p.db'}", n_trials=2, trial_callback=records.append
    )
    assert result.start_point == "prior" and records[0].params == prior
    resumed = _study(data, f"sqlite:///{tmp_path / 'p.db'}", n_trials=1)
    assert resumed.start_point == "none"  # only a new study starts from the prior
    records.clear()
    drawn = _study(
        data,
        f"sqlite:///{tmp_path / 'd.db'}",
        n_trials=1,
        prior=None,
        trial_callback=records.append,
    )
    assert drawn.start_point == "none" and records[0].params != prior


def _frozen(number: int, value: float | None) -> optuna.trial.FrozenTrial:
    state = optuna.trial.TrialState.PRUNED if value is None else optuna.trial.TrialState.COMPLETE
    trial = optuna.trial.create_trial(state=state, value=value)
    trial.number = number
    return trial


def test_best_value_movement_is_the_best_values_move_over_the_window() -> None:
    evaluate = BestValueMovement(window=3).evaluate
    minimize = optuna.study.StudyDirection.MINIMIZE
    values = [0.70, 0.69, None, 0.695, 0.689, None]  # None: pruned, counted as a trial tried
    trials = [_frozen(i, v) for i, v in enumerate(values)]
    assert evaluate(trials[:3], minimize) == float("inf")  # no trial before the window yet
    assert evaluate(trials[:4], minimize) == pytest.approx(0.70 - 0.69)  # 0.69 in the window
    assert evaluate(trials, minimize) == pytest.approx(0.69 - 0.689)
    maximize = optuna.study.StudyDirection.MAXIMIZE
    assert evaluate(trials, maximize) == pytest.approx(0.0)  # 0.70 stays the best
    with pytest.raises(ValueError, match="window"):
        BestValueMovement(window=0)


def _optuna_cv_error(fold_values: list[float]) -> float:
    """CrossValidationErrorEvaluator's standard error of k fold scores, written out."""
    k = len(fold_values)
    return float(np.sqrt((1 / k + 1 / (k - 1)) * np.var(fold_values)))


def test_the_study_stops_when_its_best_value_stops_moving_beyond_the_cv_noise(
    data, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    window = 3
    result = _study(data, url, n_trials=40, stagnation_trials=window)
    study = optuna.load_study(study_name="test", storage=url)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert result.stop_reason == "stagnation" and len(finished) < 40
    assert result.n_complete + result.n_pruned == len(finished) == result.n_trials_tried
    best = study.best_trial
    assert result.cv_noise == pytest.approx(_optuna_cv_error(best.user_attrs["fold_values"]))

    def complete(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
        return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]

    def moved(n: int) -> float:  # how far the best value moved over trials n-window .. n-1
        before = [t.value for t in complete(finished[: max(n - window, 0)])]
        return min(before) - min(t.value for t in complete(finished[:n])) if before else np.inf

    def noise(n: int) -> float:  # the CV standard error of the best of the first n trials
        best = min(complete(finished[:n]), key=lambda t: t.value)
        return _optuna_cv_error(best.user_attrs["fold_values"])

    n = len(finished)
    assert moved(n) < noise(n)  # it stopped because the rule held ...
    assert all(moved(i) >= noise(i) for i in range(1, n))  # ... and at the first trial it did
    # what tuned_params hands on: the Deflated Sharpe's N is the number of trials scored
    dates = data[0].index.get_level_values("date").unique()
    windows = plan_windows(dates, evaluation_months=2, refit_months=1, horizon=1)
    value = Tuned(result, windows, 3, False, result.duration_s).value()
    assert value.n_trials_total == len(finished) == value.n_trials_run
    assert value.stop_reason == "stagnation" and value.cv_noise == result.cv_noise
    assert value.n_trials_pruned == result.n_pruned and value.n_trials_lost == 0


def test_the_stop_reason_names_the_trial_and_the_time_limit(data, tmp_path: Path) -> None:
    limited = _study(data, f"sqlite:///{tmp_path / 'n.db'}", n_trials=2, stagnation_trials=5)
    assert limited.stop_reason == "trial_limit" and limited.n_complete + limited.n_pruned == 2
    spec = StudySpec("s", "sqlite:///:memory:", n_trials=3, timeout_s=60.0)
    one = tuning._Finished([_frozen(0, 0.69)], [])
    assert tuning._stop_reason(spec, one, elapsed_s=61.0) == "time_limit"
    assert tuning._stop_reason(spec, one, elapsed_s=1.0) == "workers_lost"
    lost = tuning._Finished([_frozen(i, 0.69) for i in range(3)], [], lost=[1])
    assert tuning._stop_reason(spec, lost, elapsed_s=1.0) == "workers_lost"  # 1 of 3 lost
    stagnant = tuning._Finished([_frozen(0, 0.69)], [], stagnated=True)
    assert tuning._stop_reason(spec, stagnant, elapsed_s=61.0) == "stagnation"


def test_one_failing_trial_is_recorded_and_the_study_goes_on(
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_suggest = tuning.suggest_params

    def flaky_suggest(trial: optuna.Trial, **kwargs: Any) -> dict[str, Any]:
        params = real_suggest(trial, **kwargs)
        if trial.number == 1:
            raise RuntimeError("flaky trial")
        return params

    monkeypatch.setattr(tuning, "suggest_params", flaky_suggest)
    records: list[TrialRecord] = []
    result = _study(
        data, f"sqlite:///{tmp_path / 'fail.db'}", n_trials=3, trial_callback=records.append
    )
    assert [r.state for r in records] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert result.n_failed == 1 and result.n_complete == 2
    assert result.first_error == "RuntimeError: flaky trial" == records[1].error
    assert result.best_trial_number in (0, 2)


def test_all_trials_failing_raises_the_first_error(
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y, folds = data
    calls: list[int] = []

    def broken_train(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise RuntimeError(f"boom {len(calls)}")

    monkeypatch.setattr(tuning.lgb, "train", broken_train)
    with pytest.raises(TuningError) as err:
        run_study(
            X,
            y,
            folds,
            StudySpec(
                "bad",
                f"sqlite:///{tmp_path / 'bad.db'}",
                n_trials=3,
                timeout_s=60.0,
                pruner="none",
                seed=1,
                **FAST,
            ),
        )
    assert "all 3 trials" in str(err.value) and "boom 1" in str(err.value)
    assert err.value.first_error is not None and err.value.__cause__ is err.value.first_error
    assert str(err.value.first_error) == "boom 1"


def test_labels_other_than_0_and_1_are_refused(data, tmp_path: Path) -> None:
    X, y, folds = data  # LightGBM itself would silently read label 2 as "up"
    with pytest.raises(ValueError, match="0 and 1"):
        run_study(
            X,
            y + 1,
            folds,
            StudySpec(
                "y", f"sqlite:///{tmp_path / 'y.db'}", n_trials=1, timeout_s=10.0, pruner="none"
            ),
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": 2.5}, "n_trials"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"pruner": "asha"}, "pruner"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(
    kwargs: dict, field: str, data, tmp_path: Path
) -> None:
    X, y, folds = data
    args = {"n_trials": 2, "timeout_s": 10.0, "pruner": "median"} | kwargs
    with pytest.raises(ValueError, match=field):
        validate_tuning_args(**args)
    db = tmp_path / "never" / "s.db"
    with pytest.raises(ValueError, match=field):
        run_study(X, y, folds, StudySpec("x", f"sqlite:///{db}", seed=1, **args))
    assert not db.parent.exists()  # refused before touching the storage


def test_hyperband_and_no_pruner_run(data, tmp_path: Path) -> None:
    for pruner in ("hyperband", "none"):
        result = _study(data, f"sqlite:///{tmp_path / f'{pruner}.db'}", n_trials=2, pruner=pruner)
        assert result.n_complete + result.n_pruned == 2
        if pruner == "none":
            assert result.n_pruned == 0


def test_row_cap_samples_whole_tickers_inside_each_fold_deterministically(data) -> None:
    X, y, folds = data
    caps = RowSample(max_train_rows=500, max_test_rows=120, seed=3)
    arrays = tuning._fold_arrays(X, y, folds, caps)
    again = tuning._fold_arrays(X, y, folds, caps)
    values = X.to_numpy(np.float32)
    tickers = X.index.get_level_values("ticker").to_numpy()
    for fold, a, b in zip(folds, arrays, again, strict=True):
        assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.X_test, b.X_test)
        assert 0 < len(a.y_train) <= 500 and 0 < len(a.y_test) <= 120
        # every kept row is a row of the fold's own dates: the purged split is untouched
        train = tuning.rows_for(X.index, fold.train_dates)
        test = tuning.rows_for(X.index, fold.test_dates)
        kept_train = {r.tobytes() for r in a.X_train}
        assert kept_train <= {r.tobytes() for r in values[train]}
        assert {r.tobytes() for r in a.X_test} <= {r.tobytes() for r in values[test]}
        # whole tickers: each kept ticker keeps all of its training dates
        train_tickers = {
            t
            for t, r in zip(tickers[train], values[train], strict=True)
            if r.tobytes() in kept_train
        }
        assert a.n_tickers == len(train_tickers) < X.index.get_level_values("ticker").nunique()
        assert len(a.y_train) == sum(np.isin(tickers[train], list(train_tickers)))
    uncapped = tuning._fold_arrays(X, y, folds, ALL_ROWS)
    assert [len(a.y_train) for a in uncapped] == [
        int(tuning.rows_for(X.index, f.train_dates).sum()) for f in folds
    ]


def test_study_reports_the_rows_it_tuned_on(data, tmp_path: Path) -> None:
    X, _, _ = data
    rows = RowSample(max_train_rows=600)
    capped = _study(data, f"sqlite:///{tmp_path / 'c.db'}", n_trials=2, rows=rows)
    assert capped.dev_rows == len(X)
    assert all(0 < n <= 600 for n in capped.tuning_train_rows)
    assert capped.tuning_rows == sum(capped.tuning_train_rows)
    with pytest.raises(ValueError, match="max_train_rows"):
        _study(data, f"sqlite:///{tmp_path / 'd.db'}", n_trials=1, rows=RowSample(0))


def _returns_like(y: pd.Series, seed: int = 5) -> pd.Series:
    """A next-day return whose sign is the label's, with a few rows missing (NaN)."""
    rng = np.random.default_rng(seed)
    size = np.abs(rng.normal(0.0, 0.01, len(y)))
    ret = np.where(y.to_numpy() == 1, size, -size)
    ret[rng.choice(len(y), 25, replace=False)] = np.nan
    return pd.Series(ret, index=y.index, name="forward_return")


def test_returns_give_each_complete_trial_a_finite_oof_sharpe(data, tmp_path: Path) -> None:
    _, y, _ = data
    url = f"sqlite:///{tmp_path / 'sharpe.db'}"
    # the caller's returns may arrive in another row order: they are aligned on X's index
    returns = _returns_like(y).sample(frac=1.0, random_state=0)
    result = _study(data, url, n_trials=8, returns=returns)
    study = optuna.load_study(study_name="test", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == result.n_complete >= 2
    sharpes = [t.user_attrs["oof_sharpe"] for t in complete]
    assert all(np.isfinite(sharpes))
    assert result.trial_sharpes == pytest.approx(sharpes)
    # per period and sane: the label predicts the return's sign, so a model better than a coin
    # earns a positive (daily, not annualised) Sharpe
    assert all(-1.0 < s < 5.0 for s in sharpes) and np.mean(sharpes) > 0
    others = [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert all("oof_sharpe" not in t.user_attrs for t in others)
    # without returns nothing is recorded
    plain = _study(data, f"sqlite:///{tmp_path / 'plain.db'}", n_trials=2)
    assert plain.trial_sharpes == []


def test_oof_sharpe_is_the_backtests_long_short_sharpe(data) -> None:
    X, y, folds = data
    returns = _returns_like(y)
    arrays = tuning._fold_arrays(X, y, folds, ALL_ROWS, returns)
    rng = np.random.default_rng(0)
    proba = [rng.random(len(a.y_test)) for a in arrays]
    cost_bps = 5.0
    got = tuning.oof_sharpe(arrays, proba, cost_bps)
    # by hand: +1 / -1 on P(up) > 0.5, round trip charged daily, equal-weight mean per date
    frames = []
    for a, p in zip(arrays, proba, strict=True):
        pos = np.where(p > 0.5, 1.0, -1.0)
        net = pos * a.test_returns - 2 * cost_bps / 1e4
        frames.append(pd.DataFrame({"date": a.test_index.get_level_values(0), "net": net}))
    daily = pd.concat(frames).dropna().groupby("date")["net"].mean()
    assert got == pytest.approx(daily.mean() / daily.std(ddof=1), rel=1e-12)
    with pytest.raises(ValueError, match="returns"):
        tuning.oof_sharpe(tuning._fold_arrays(X, y, folds, ALL_ROWS), proba, cost_bps)
