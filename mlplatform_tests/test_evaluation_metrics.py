"""Metrics against hand-computed values and known cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from mlplatform.evaluation import metrics as m
from mlplatform.evaluation.backtest import STRATEGY_METRICS


def test_wilson_interval_matches_the_closed_form_and_a_known_value() -> None:
    k, n, z = 7, 10, stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = m.wilson_interval(k, n)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    assert (low, high) == pytest.approx((0.3968, 0.8922), abs=1e-4)  # textbook value for 7/10
    assert all(math.isnan(v) for v in m.wilson_interval(0, 0))


def test_classification_metrics_by_hand() -> None:
    y = np.array([1, 0, 1, 1])
    p = np.array([0.8, 0.45, 0.4, 0.5])  # predictions 1, 0, 0, 0 (a tie is "not up")
    out = m.classification_metrics(y, p)
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["balanced_accuracy"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.55, 0.4, 0.5])))
    assert out["brier"] == pytest.approx(np.mean([0.04, 0.2025, 0.36, 0.25]))
    assert out["auc"] == pytest.approx(2 / 3)  # (pos, neg) pairs: 0.8>0.45, 0.4<0.45, 0.5>0.45
    assert out["window_majority_rate"] == pytest.approx(0.75)
    assert out["up_share"] == pytest.approx(0.25)
    assert out["down_share"] == pytest.approx(0.75)
    assert out["n"] == 4
    # P(X >= 2) for X ~ Bin(4, 0.75)
    assert out["p_value_vs_majority"] == pytest.approx(1 - 0.25**4 - 4 * 0.75 * 0.25**3)


def test_a_constant_score_has_the_auc_scikit_learn_gives_it() -> None:
    y = np.array([1, 0, 1, 1, 0])
    for value in (0.0, 0.52, 1.0):
        p = np.full(len(y), value)
        assert m.auc(y, p) == pytest.approx(sk.roc_auc_score(y, p)) == 0.5


def test_binomial_p_value_known_case() -> None:
    assert m.binomial_p_value(10, 10, 0.5) == pytest.approx(1 / 1024)
    assert m.binomial_p_value(0, 10, 0.5) == pytest.approx(1.0)


def test_degenerate_inputs_are_nan_or_finite_not_errors() -> None:
    y = np.array([1, 1, 1])
    out = m.classification_metrics(y, np.array([0.0, 1.0, 1.0]))
    assert math.isnan(out["auc"])  # one class: undefined
    assert math.isfinite(out["log_loss"])  # a hard wrong 0.0 is clipped
    assert out["log_loss"] == pytest.approx(-math.log(m.PROB_CLIP) / 3, rel=1e-6)
    with pytest.raises(ValueError, match="no rows"):
        m.classification_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="0/1"):
        m.classification_metrics(np.array([2]), np.array([0.5]))
    for bad in (np.nan, 1.5, -0.1):  # scikit-learn refused these too
        with pytest.raises(ValueError, match=r"probabilities must be numbers in \[0, 1\]"):
            m.classification_metrics(np.array([1, 0]), np.array([0.5, bad]))
    with pytest.raises(ValueError, match="differ in length"):
        m.classification_metrics(np.array([1, 0]), np.array([0.5]))


def test_mcnemar_exact() -> None:
    y = np.ones(8, dtype=int)
    a = np.array([1, 1, 1, 1, 1, 1, 0, 1.0])  # right on all but row 6
    b = np.array([0, 0, 0, 0, 0, 1, 0, 1.0])  # right on rows 5 and 7
    r = m.mcnemar_exact(y, a, b)
    assert (r.primary_only_correct, r.challenger_only_correct, r.n_discordant) == (5, 0, 5)
    assert r.statistic == 0
    assert r.p_value == pytest.approx(2 / 32)
    same = m.mcnemar_exact(y, a, a)
    assert same.n_discordant == 0 and same.p_value == 1.0


def test_strategy_metrics_by_hand() -> None:
    assert m.annualised_return([0.01] * 252, 252) == pytest.approx(1.01**252 - 1)
    assert m.annualised_return([0.5, -1.0], 252) == -1.0
    assert m.sharpe_ratio([0.01, 0.03], 1) == pytest.approx(0.02 / math.sqrt(2e-4))
    assert m.sharpe_ratio([0.01, 0.03], 252) == pytest.approx(
        0.02 / math.sqrt(2e-4) * math.sqrt(252)
    )
    assert math.isnan(m.sharpe_ratio([0.01, 0.01, 0.01]))
    r = [0.02, -0.01, 0.03, -0.02]
    assert m.sortino_ratio(r, 1) == pytest.approx(0.005 / math.sqrt(0.0005 / 4))
    assert m.sortino_ratio([0.01, 0.02], 1) == math.inf
    assert m.max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(-0.5)
    assert m.max_drawdown([-0.1, 0.05]) == pytest.approx(-0.1)  # starting capital is a peak
    assert m.max_drawdown([0.01, 0.02]) == 0.0
    ret = [0.1, -0.5, 0.2]
    assert m.calmar_ratio(ret, 3) == pytest.approx(m.annualised_return(ret, 3) / 0.5)
    assert math.isnan(m.calmar_ratio([0.01, 0.02]))


def _psr_by_hand(r: np.ndarray, sr_star: float) -> float:
    mu, sd = r.mean(), r.std(ddof=1)
    sr = mu / sd
    c = r - mu
    g3 = np.mean(c**3) / np.mean(c**2) ** 1.5
    g4 = np.mean(c**4) / np.mean(c**2) ** 2
    z = (sr - sr_star) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def test_psr_matches_the_design_formula_and_is_half_at_the_benchmark() -> None:
    rng = np.random.default_rng(0)
    r = rng.standard_t(5, size=300) * 0.01 + 0.001
    assert m.probabilistic_sharpe_ratio(r, 0.0) == pytest.approx(_psr_by_hand(r, 0.0), rel=1e-12)
    assert m.probabilistic_sharpe_ratio(r, 0.05) == pytest.approx(_psr_by_hand(r, 0.05), rel=1e-12)
    sr = m.sharpe_ratio(r, 1)
    assert m.probabilistic_sharpe_ratio(r, sr) == pytest.approx(0.5)
    assert math.isnan(m.probabilistic_sharpe_ratio([0.01, 0.02]))


def test_expected_max_sharpe_hand_value() -> None:
    # N = 10: (1-γ)Φ⁻¹(0.9) + γΦ⁻¹(1 - 1/(10e)), Φ⁻¹(0.9) = 1.2815516, Φ⁻¹(0.9632121) = 1.7897...
    z = (1 - 0.5772156649) * 1.2815515655 + 0.5772156649 * stats.norm.ppf(1 - 1 / (10 * math.e))
    assert m.expected_max_sharpe(0.04, 10) == pytest.approx(0.2 * z)
    assert m.expected_max_sharpe(0.04, 1) == 0.0


def test_dsr_uses_trial_variance_and_falls_back_and_decreases_with_n() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, size=250)
    trials = np.array([0.02, 0.05, -0.01, 0.08, 0.03])
    sr0 = m.expected_max_sharpe(float(np.var(trials, ddof=1)), 20)
    assert m.deflated_sharpe_ratio(r, 20, trials) == pytest.approx(
        m.probabilistic_sharpe_ratio(r, sr0)
    )
    # one trial: nothing to deflate
    assert m.deflated_sharpe_ratio(r, 1) == pytest.approx(m.probabilistic_sharpe_ratio(r, 0.0))
    # fallback: DSR = Φ(z_PSR(0) − z_N)
    z_psr = stats.norm.ppf(m.probabilistic_sharpe_ratio(r, 0.0))
    z_n = m.expected_max_sharpe(1.0, 50)
    assert m.deflated_sharpe_ratio(r, 50) == pytest.approx(stats.norm.cdf(z_psr - z_n))
    dsrs = [m.deflated_sharpe_ratio(r, n) for n in (1, 2, 10, 100, 1000)]
    assert all(a > b for a, b in itertools.pairwise(dsrs))


def test_strategy_metrics_keys() -> None:
    out = m.strategy_metrics([0.01, -0.005, 0.02, 0.0], 0.25, n_trials=3, periods_per_year=252)
    assert tuple(out) == STRATEGY_METRICS  # what the backtest and its report read
    assert out["turnover"] == 0.25


def test_dsr_with_tightly_clustered_trial_sharpes_beats_the_fallback() -> None:
    # correlated trials (one model family on the same folds) have Sharpes close to each other:
    # their dispersion, not the SR estimator's sampling variance, is what the DSR deflates by
    rng = np.random.default_rng(2)
    r = rng.normal(0.0012, 0.01, size=126)  # ~1.9 annualised over six months
    trials = 0.05 + rng.normal(0.0, 0.005, size=50)  # per period, SD 0.005
    fallback = m.deflated_sharpe_ratio(r, 50)
    informed = m.deflated_sharpe_ratio(r, 50, trials)
    assert informed > fallback
    assert informed <= m.probabilistic_sharpe_ratio(r, 0.0)  # SR0 >= 0: never above PSR(0)
    # fewer than two finite trial Sharpes carry no variance: the fallback applies
    assert m.deflated_sharpe_ratio(r, 50, [0.05, math.nan]) == pytest.approx(fallback)
    assert m.deflated_sharpe_ratio(r, 50, [0.05]) == pytest.approx(fallback)


def test_date_level_test_does_not_count_correlated_rows_as_independent() -> None:
    from mlplatform.evaluation.metrics import binomial_p_value, date_level_p_value

    # 20 dates x 100 tickers that all move together; the model is right on 11 of the 20 dates.
    dates = np.repeat(np.arange(20), 100)
    up_day = np.arange(20) % 2 == 0
    y = np.repeat(up_day, 100).astype(int)
    right_day = np.arange(20) < 11
    proba = np.where(np.repeat(right_day, 100), y, 1 - y).astype(float)
    hits = int(((proba > 0.5).astype(int) == y).sum())
    assert binomial_p_value(hits, len(y), 0.5) < 1e-3  # 2,000 "independent" rows
    assert date_level_p_value(y, proba, dates) > 0.1  # really 20 observations
