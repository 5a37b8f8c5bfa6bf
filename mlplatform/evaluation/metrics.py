"""Classification, significance and strategy metrics for the backtest.

Pure functions over numpy arrays / pandas Series. scikit-learn computes the classification
scores and scipy the statistics; what is written here is the glue (guards for degenerate inputs,
one place for conventions such as "p > 0.5 means up") and the Sharpe-ratio significance formulas
from DESIGN.md, which no installed library provides.

Conventions:
- A probability p is P(up); the predicted class is up when p > 0.5 (a tie counts as "not up",
  matching the label's rule that a zero return is not up).
- Undefined values (AUC on one class, Sharpe of a constant series, ...) are NaN, never an
  exception; the JSON layer turns NaN into null.
- Sharpe ratios passed to `probabilistic_sharpe_ratio` / `deflated_sharpe_ratio` are per period
  (not annualised), as the formulas require.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as sk

EULER_GAMMA = 0.5772156649015329
PROB_CLIP = 1e-15  # the log loss clips probabilities to [eps, 1 - eps]
CONFIDENCE_LEVEL = 0.95

ArrayLike: TypeAlias = np.ndarray | pd.Series | Sequence[float]


def predicted_class(proba: ArrayLike) -> np.ndarray:
    """Up (1) when P(up) > 0.5, else 0: ties go to "not up" like the label rule."""
    return (np.asarray(proba, dtype=float) > 0.5).astype(np.int8)


def _labels(y_true: ArrayLike) -> np.ndarray:
    y = np.asarray(y_true).astype(np.int8)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    return y


def _probabilities(proba: ArrayLike, y: np.ndarray) -> np.ndarray:
    p = np.asarray(proba, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length: {y.shape} vs {p.shape}")
    if not np.all((p >= 0.0) & (p <= 1.0)):  # NaN fails too
        raise ValueError("probabilities must be numbers in [0, 1] (NaN or out of range found)")
    return p


# --- classification ----------------------------------------------------------------------------
def wilson_interval(
    k: int, n: int, confidence_level: float = CONFIDENCE_LEVEL
) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (scipy; NaN when n == 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(
        confidence_level=confidence_level, method="wilson"
    )
    return (float(ci.low), float(ci.high))


def majority_rate(y_true: ArrayLike) -> float:
    """Share of the more frequent class: the accuracy of always guessing it (the "no-information
    rate"). Computed on the rows being scored, which is the harder, hindsight bar."""
    y = _labels(y_true)
    if y.size == 0:
        return math.nan
    up = float(y.mean())
    return max(up, 1.0 - up)


def binomial_p_value(k: int, n: int, p0: float) -> float:
    """One-sided P(X >= k) for X ~ Binomial(n, p0): is accuracy k/n better than p0?"""
    if n <= 0 or not 0.0 <= p0 <= 1.0:
        return math.nan
    return float(stats.binomtest(int(k), int(n), p0, alternative="greater").pvalue)


def date_level_p_value(y_true: ArrayLike, proba: ArrayLike, dates: ArrayLike) -> float:
    """One-sided p-value that accuracy beats the majority-class rate with dates as the unit.

    Rows of one date share the market factor, so the row-level binomial test overstates the
    evidence; here each date's (accuracy − majority-rate hits) is one observation in a one-sample
    t-test (scipy), which is the honest sample size for a cross-section that moves together.
    """
    y = _labels(y_true)
    hit = (np.asarray(proba, dtype=float) > 0.5).astype(int) == y
    majority_up = y.mean() >= 0.5
    majority_hit = y == int(majority_up)
    frame = pd.DataFrame({"date": np.asarray(dates), "edge": hit.astype(float) - majority_hit})
    per_date = frame.groupby("date", sort=False)["edge"].mean().to_numpy()
    if len(per_date) < 3 or np.allclose(per_date, per_date[0]):
        return math.nan
    return float(stats.ttest_1samp(per_date, 0.0, alternative="greater").pvalue)


def auc(y_true: ArrayLike, proba: ArrayLike) -> float:
    """ROC AUC (scikit-learn); NaN when only one class is present, where it is undefined.

    A constant score ranks nothing: 0.5, as scikit-learn would say after sorting every row (the
    naive rules are constants, and a sort of 1.5 M rows costs a fifth of a second each).
    """
    y = _labels(y_true)
    p = _probabilities(proba, y)
    if not 0 < int(y.sum()) < y.size:
        return math.nan
    if p.min() == p.max():
        return 0.5
    return float(sk.roc_auc_score(y, p))


def classification_metrics(
    y_true: ArrayLike, proba: ArrayLike, confidence_level: float = CONFIDENCE_LEVEL
) -> dict[str, float]:
    """Every directional metric of one model on one set of rows.

    Keys: accuracy, wilson_low, wilson_high, balanced_accuracy, auc, log_loss, brier,
    p_value_vs_majority, window_majority_rate, up_share, down_share, n.
    """
    y = _labels(y_true)
    p = _probabilities(proba, y)
    n = int(y.size)
    if n == 0:
        raise ValueError("no rows to score")
    pred = predicted_class(p)
    k = int((pred == y).sum())
    low, high = wilson_interval(k, n, confidence_level)
    maj = majority_rate(y)
    up_share = float(pred.mean())
    with warnings.catch_warnings():  # one class present: scikit-learn warns, then answers
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(sk.balanced_accuracy_score(y, pred))
    # the log loss clips P(up) so a hard 0/1 rule scores finitely
    clipped = np.clip(p, PROB_CLIP, 1.0 - PROB_CLIP)
    return {
        "accuracy": float(sk.accuracy_score(y, pred)),
        "wilson_low": low,
        "wilson_high": high,
        "balanced_accuracy": balanced,
        "auc": auc(y, p),
        "log_loss": float(sk.log_loss(y, clipped, labels=[0, 1])),
        "brier": float(sk.brier_score_loss(y, p, labels=[0, 1])),
        "p_value_vs_majority": binomial_p_value(k, n, maj),
        "window_majority_rate": maj,
        "up_share": up_share,
        "down_share": 1.0 - up_share,
        "n": float(n),
    }


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test. statistic = min(b, c) (the statsmodels convention for exact=True)."""

    statistic: float
    p_value: float
    n_discordant: int
    primary_only_correct: int  # b: primary right, challenger wrong
    challenger_only_correct: int  # c: primary wrong, challenger right

    def to_dict(self) -> dict[str, float | int]:
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "n_discordant": self.n_discordant,
            "primary_only_correct": self.primary_only_correct,
            "challenger_only_correct": self.challenger_only_correct,
        }


def mcnemar_exact(
    y_true: ArrayLike, proba_primary: ArrayLike, proba_challenger: ArrayLike
) -> McNemarResult:
    """Paired two-sided test that two classifiers have the same error rate on the same rows.

    Only discordant pairs carry information; under H0 each is equally likely to favour either
    model, so b ~ Binomial(b + c, 0.5) (scipy's exact binomial test). No discordant pairs: p = 1.
    """
    y = _labels(y_true)
    right_a = predicted_class(proba_primary) == y
    right_b = predicted_class(proba_challenger) == y
    if right_a.shape != right_b.shape:
        raise ValueError("both models must be scored on the same rows")
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    n = b + c
    p_value = 1.0 if n == 0 else float(stats.binomtest(b, n, 0.5).pvalue)
    return McNemarResult(float(min(b, c)), p_value, n, b, c)


# --- strategy --------------------------------------------------------------------------------
def annualised_return(returns: ArrayLike, periods_per_year: int = 252) -> float:
    """Geometric (compounded) annual growth rate; -1 when the equity is wiped out."""
    r = np.asarray(returns, dtype=float)
    if r.size == 0:
        return math.nan
    growth = float(np.prod(1.0 + r))
    if growth <= 0.0:
        return -1.0
    return growth ** (periods_per_year / r.size) - 1.0


def sharpe_ratio(returns: ArrayLike, periods_per_year: int = 1) -> float:
    """mean / std (ddof=1) × √periods_per_year; risk-free rate 0. periods_per_year=1 gives the
    per-period SR that PSR/DSR need. NaN when the series is constant or shorter than 2."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return math.nan
    sd = float(r.std(ddof=1))
    if not sd > 1e-15:
        return math.nan
    return float(r.mean()) / sd * math.sqrt(periods_per_year)


def sortino_ratio(returns: ArrayLike, periods_per_year: int = 252) -> float:
    """mean / downside deviation × √periods_per_year, target 0; downside deviation is
    √mean(min(r, 0)²) over all periods. +inf when there is no losing period and the mean is
    positive (the JSON layer writes null)."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return math.nan
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    mean = float(r.mean())
    if dd == 0.0:
        return math.inf if mean > 0 else math.nan
    return mean / dd * math.sqrt(periods_per_year)


def equity_curve(returns: ArrayLike) -> np.ndarray:
    """Compounded equity starting from 1 before the first period."""
    return np.cumprod(1.0 + np.asarray(returns, dtype=float))


def max_drawdown(returns: ArrayLike) -> float:
    """Largest peak-to-trough fall of the equity curve, as a non-positive fraction (-0.2 = a 20 %
    drawdown); the starting capital counts as the first peak."""
    r = np.asarray(returns, dtype=float)
    if r.size == 0:
        return math.nan
    eq = np.concatenate([[1.0], equity_curve(r)])
    peak = np.maximum.accumulate(eq)
    return float(np.min(eq / peak - 1.0))


def calmar_ratio(returns: ArrayLike, periods_per_year: int = 252) -> float:
    """Annualised return / |max drawdown|; NaN without a drawdown."""
    mdd = max_drawdown(returns)
    if not mdd < 0.0:
        return math.nan
    return annualised_return(returns, periods_per_year) / abs(mdd)


def _moments(r: np.ndarray) -> tuple[float, float, float]:
    """Per-period SR, skewness γ3 and raw (non-excess) kurtosis γ4 (scipy, sample moments)."""
    sr = sharpe_ratio(r, 1)
    g3 = float(stats.skew(r))
    g4 = float(stats.kurtosis(r, fisher=False))
    return sr, g3, g4


def _sr_variance_term(sr: float, g3: float, g4: float) -> float:
    """1 − γ3·SR + (γ4−1)/4·SR²: (T−1) × the variance of the SR estimator (Mertens/Bailey)."""
    return 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr


def probabilistic_sharpe_ratio(returns: ArrayLike, sr_benchmark: float = 0.0) -> float:
    """PSR(SR*) = Φ[(SR − SR*)·√(T−1) / √(1 − γ3·SR + (γ4−1)/4·SR²)] (DESIGN.md).

    The probability that the true per-period Sharpe exceeds `sr_benchmark` (per period) given
    T observed returns and their skewness/kurtosis. NaN when undefined (T < 3, constant series,
    or a non-positive variance term from extreme moments).
    """
    r = np.asarray(returns, dtype=float)
    if r.size < 3:
        return math.nan
    sr, g3, g4 = _moments(r)
    if not math.isfinite(sr):
        return math.nan
    denom = _sr_variance_term(sr, g3, g4)
    if not denom > 0.0:
        return math.nan
    z = (sr - sr_benchmark) * math.sqrt(r.size - 1) / math.sqrt(denom)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(sr_variance: float, n_trials: int) -> float:
    """SR0 = √V[SR_n]·[(1−γ)Φ⁻¹(1−1/N) + γΦ⁻¹(1−1/(N·e))]: the expected best per-period Sharpe
    among N trials whose true Sharpe is zero. 0 for N ≤ 1 (nothing was selected)."""
    if n_trials <= 1 or not sr_variance >= 0.0:
        return 0.0
    n = float(n_trials)
    z = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n) + EULER_GAMMA * stats.norm.ppf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(sr_variance) * float(z)


def deflated_sharpe_ratio(
    returns: ArrayLike, n_trials: int, trial_sharpes: ArrayLike | None = None
) -> float:
    """DSR = PSR(SR0) with SR0 from `expected_max_sharpe` (DESIGN.md).

    V[SR_n] is the sample variance (ddof=1) of `trial_sharpes` (per-period Sharpe ratios of the
    trials tried, e.g. the study's out-of-fold Sharpes) when at least two finite ones are given.
    Fallback, when the trials' Sharpes are unknown: the sampling variance of the Sharpe estimator
    itself, (1 − γ3·SR + (γ4−1)/4·SR²)/(T−1), i.e. the spread the N trials' Sharpes would have
    if they were all noise around this one. Then DSR = Φ(z_PSR(0) − z_N), with z_N the bracket
    above: the PSR z-score minus the expected maximum of N standard normals.
    """
    r = np.asarray(returns, dtype=float)
    if r.size < 3:
        return math.nan
    ts = np.asarray([] if trial_sharpes is None else trial_sharpes, dtype=float).ravel()
    ts = ts[np.isfinite(ts)]
    if ts.size >= 2:  # fewer than two finite trial Sharpes have no variance: use the fallback
        variance = float(np.var(ts, ddof=1))
    else:
        sr, g3, g4 = _moments(r)
        if not math.isfinite(sr):
            return math.nan
        variance = _sr_variance_term(sr, g3, g4) / (r.size - 1)
    return probabilistic_sharpe_ratio(r, expected_max_sharpe(variance, int(n_trials)))


def strategy_metrics(
    returns: ArrayLike,
    positions_turnover: float,
    *,
    n_trials: int = 1,
    periods_per_year: int = 252,
    trial_sharpes: ArrayLike | None = None,
) -> dict[str, float]:
    """Metrics of one strategy's net daily returns.

    Keys: ann_return, sharpe (annualised), sortino, max_drawdown (≤ 0), calmar, turnover (the
    average one-way fraction of the book traded per period, passed in because it needs the
    positions), psr (vs SR* = 0), dsr.
    """
    r = np.asarray(returns, dtype=float)
    return {
        "ann_return": annualised_return(r, periods_per_year),
        "sharpe": sharpe_ratio(r, periods_per_year),
        "sortino": sortino_ratio(r, periods_per_year),
        "max_drawdown": max_drawdown(r),
        "calmar": calmar_ratio(r, periods_per_year),
        "turnover": float(positions_turnover),
        "psr": probabilistic_sharpe_ratio(r, 0.0),
        "dsr": deflated_sharpe_ratio(r, n_trials, trial_sharpes),
    }
