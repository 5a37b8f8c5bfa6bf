"""Is production's live record significantly worse than its walk-forward expectation?

A fixed-sample test repeated on every new day would raise false alarms far more often than its
level over a year of daily looks. This is a one-sided CUSUM (Page) on the daily live accuracy,
standardised by the walk-forward's own day-to-day spread, tuned to detect the whole expected
edge disappearing (accuracy falling to no skill): S_t = max(0, S_{t-1} + z_t - k) with
z_t = (expected - accuracy_t) / sd and k = half the standardised edge; it alarms when S_t >= h.
h is set by Siegmund's approximation of the average run length under no change (normal daily
accuracies), so that a model that keeps its edge raises a false alarm within `horizon_days`
with probability `false_alarm_rate` (a geometric run length). benchmarks/bench_live.py measures
both error rates on simulated markets instead of trusting the approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from mlplatform.features.layout import values_on

NO_SKILL = 0.5  # a direction guess without information


@dataclass(frozen=True)
class Expectation:
    """What the walk-forward promised for a version: its daily accuracy's mean and spread."""

    accuracy: float
    daily_sd: float
    days: int
    log_loss: float = math.nan

    @property
    def edge(self) -> float:
        return self.accuracy - NO_SKILL

    def to_dict(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "daily_sd": self.daily_sd,
            "days": self.days,
            "log_loss": self.log_loss,
        }

    @classmethod
    def from_dict(cls, value: dict[str, float]) -> Expectation:
        return cls(
            float(value["accuracy"]),
            float(value["daily_sd"]),
            int(value["days"]),
            float(value.get("log_loss", math.nan)),
        )

    @classmethod
    def of_walk_forward(cls, p_up: pd.Series, labels: pd.Series) -> Expectation:
        """From the walk-forward's out-of-sample predictions and their labels (by row)."""
        label = values_on(labels, p_up.index)
        known = ~np.isnan(label)
        p, y = p_up.to_numpy(dtype=float)[known], label[known].astype(int)
        right = pd.Series((p > 0.5) == (y == 1), index=p_up.index[known])
        daily = right.groupby(level="date").mean()
        clipped = np.clip(p, 1e-15, 1 - 1e-15)
        loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
        return cls(float(right.mean()), float(daily.std(ddof=1)), len(daily), loss)


def siegmund_arl(k: float, h: float) -> float:
    """Average run length of a one-sided CUSUM with drift -k per step (unit variance)."""
    x = 2.0 * k * (h + 1.166)
    if x > 700:  # beyond any horizon a threshold is searched for
        return math.inf
    return (math.exp(x) - x - 1.0) / (2.0 * k * k)


@dataclass(frozen=True)
class DecayTest:
    expectation: Expectation
    false_alarm_rate: float = 0.05
    horizon_days: int = 252

    @property
    def testable(self) -> bool:
        """Only an expected edge can be lost; a version without one is not tested."""
        e = self.expectation
        return e.edge > 0 and e.daily_sd > 0 and e.days >= 20

    @property
    def k(self) -> float:
        return self.expectation.edge / self.expectation.daily_sd / 2.0

    @property
    def threshold(self) -> float:
        """h such that the run length under no change is horizon / -ln(1 - rate) days."""
        target = self.horizon_days / -math.log1p(-self.false_alarm_rate)
        return float(brentq(lambda h: siegmund_arl(self.k, h) - target, 0.0, 1e3))

    def path(self, daily_accuracy: Sequence[float]) -> np.ndarray:
        """The CUSUM statistic after each day."""
        e = self.expectation
        z = (e.accuracy - np.asarray(daily_accuracy, dtype=float)) / e.daily_sd
        out = np.empty(len(z))
        s = 0.0
        for i, step in enumerate(z):
            s = max(0.0, s + step - self.k)
            out[i] = s
        return out

    def alarm_day(self, daily_accuracy: Sequence[float]) -> int | None:
        """Index of the first day the statistic reached the threshold, or None."""
        if not self.testable:
            return None
        hits = np.flatnonzero(self.path(daily_accuracy) >= self.threshold)
        return int(hits[0]) if hits.size else None
