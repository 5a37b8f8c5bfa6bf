"""How the served versions do once the next bar arrives: predictions joined with what happened.

A prediction for date D is joined with D's label and tradable return only once the bar after D
exists (features.outcomes drops rows without it), so nothing is judged on an outcome not yet
known. Everything is per version and role (champion, challenger), over the last 20 and 60
scored days and the whole record, beside the walk-forward expectation of that version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from mlplatform.evaluation.backtest import position, strategy_returns
from mlplatform.evaluation.metrics import mcnemar_exact, sharpe_ratio, wilson_interval
from mlplatform.monitoring.decay import DecayTest, Expectation

WINDOWS = {"last_20_days": 20, "last_60_days": 60, "since_promotion": None}
CHAMPION, CHALLENGER = "champion", "challenger"


def judged(predictions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The predictions whose outcome is known, with their label and tradable return."""
    keyed = predictions.assign(date=pd.to_datetime(predictions["date"]))
    known = outcomes.reset_index()[["date", "ticker", "label", "forward_return"]]
    known = known.assign(ticker=known["ticker"].astype(str))
    return keyed.merge(known, on=["date", "ticker"], how="inner")


def _record(rows: pd.DataFrame, cost_bps: float) -> dict[str, float]:
    y, p = rows["label"].to_numpy(), rows["p_up"].to_numpy(dtype=float)
    right = (p > 0.5) == (y == 1)
    low, high = wilson_interval(int(right.sum()), len(right))
    index = pd.MultiIndex.from_arrays([rows["date"], rows["ticker"]], names=["date", "ticker"])
    order = np.lexsort((index.get_level_values(1), index.get_level_values(0)))
    net, _ = strategy_returns(
        position(p[order], "long_short"),
        rows["forward_return"].to_numpy(dtype=float)[order],
        index[order],
        cost_bps,
    )
    both = len(np.unique(y)) == 2
    return {
        "days": int(rows["date"].nunique()),
        "rows": len(rows),
        "accuracy": float(right.mean()),
        "accuracy_low": low,
        "accuracy_high": high,
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "auc": float(roc_auc_score(y, p)) if both else math.nan,
        "mean_daily_return": float(net.mean()),
        "sharpe_after_costs": sharpe_ratio(net.to_numpy(), 252),
    }


def daily_accuracy(rows: pd.DataFrame) -> pd.Series:
    right = (rows["p_up"] > 0.5) == (rows["label"] == 1)
    return right.groupby(rows["date"]).mean().sort_index()


@dataclass(frozen=True)
class Served:
    """What one version did in one role: its record per window and, for the champion, the
    decay test on its daily accuracy since it started serving."""

    version: str
    role: str
    records: dict[str, dict[str, float]]
    expectation: Expectation | None
    decay_statistic: float = math.nan
    decay_threshold: float = math.nan
    decay_alarm_date: str | None = None
    daily: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    @property
    def decayed(self) -> bool:
        return self.decay_alarm_date is not None


@dataclass(frozen=True)
class Paired:
    """The challenger against the champion on the same rows (the shadow's record)."""

    challenger: str
    champion: str
    days: int
    rows: int
    agreement: float
    challenger_accuracy: float
    champion_accuracy: float
    mcnemar_p: float


@dataclass(frozen=True)
class LivePerformance:
    served: list[Served]
    paired: list[Paired]
    last_scored: str | None
    last_judged: str | None

    def champion(self, version: str | None = None) -> Served | None:
        champions = [s for s in self.served if s.role == CHAMPION]
        if version is not None:
            champions = [s for s in champions if s.version == version]
        return max(champions, key=lambda s: s.daily.index.max(), default=None)

    def shadow_days(self, challenger: str) -> int:
        return max((p.days for p in self.paired if p.challenger == challenger), default=0)

    def table(self) -> pd.DataFrame:
        rows = []
        for s in self.served:
            for window, record in s.records.items():
                expected = s.expectation.accuracy if s.expectation else math.nan
                rows.append(
                    {"version": s.version, "role": s.role, "window": window,
                     "expected_accuracy": expected, **record}
                )  # fmt: skip
        return pd.DataFrame(rows)


def measure(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    expectations: Mapping[str, Expectation],
    *,
    cost_bps: float,
) -> LivePerformance:
    """Live records of every version and role in `predictions` (all logged dates)."""
    rows = judged(predictions, outcomes)
    served = []
    for (version, role), own in rows.groupby(["version", "role"], sort=True):
        dates = np.sort(own["date"].unique())
        records = {}
        for window, days in WINDOWS.items():
            recent = own if days is None else own[own["date"].isin(dates[-days:])]
            records[window] = _record(recent, cost_bps)
        daily = daily_accuracy(own)
        expectation = expectations.get(str(version))
        extra: dict[str, object] = {}
        if role == CHAMPION and expectation is not None:
            test = DecayTest(expectation)
            if test.testable:
                alarm = test.alarm_day(daily.to_numpy())
                extra = {
                    "decay_statistic": float(test.path(daily.to_numpy())[-1]),
                    "decay_threshold": test.threshold,
                    "decay_alarm_date": None
                    if alarm is None
                    else pd.Timestamp(daily.index[alarm]).date().isoformat(),
                }
        served.append(Served(str(version), str(role), records, expectation, daily=daily, **extra))  # type: ignore[arg-type]
    paired = []
    challengers = rows[rows["role"] == CHALLENGER]
    champions = rows[rows["role"] == CHAMPION]
    for version, shadow in challengers.groupby("version"):
        both = shadow.merge(
            champions, on=["date", "ticker", "label"], suffixes=("_challenger", "_champion")
        )
        if both.empty:
            continue
        y = both["label"].to_numpy()
        p_new, p_old = both["p_up_challenger"].to_numpy(), both["p_up_champion"].to_numpy()
        paired.append(
            Paired(
                challenger=str(version),
                champion=",".join(sorted(both["version_champion"].astype(str).unique())),
                days=int(both["date"].nunique()),
                rows=len(both),
                agreement=float(((p_new > 0.5) == (p_old > 0.5)).mean()),
                challenger_accuracy=float(((p_new > 0.5) == (y == 1)).mean()),
                champion_accuracy=float(((p_old > 0.5) == (y == 1)).mean()),
                mcnemar_p=float(mcnemar_exact(y, p_old, p_new).p_value),
            )
        )
    last_scored = (
        None if predictions.empty else str(pd.to_datetime(predictions["date"]).max().date())
    )
    last_judged = None if rows.empty else str(rows["date"].max().date())
    return LivePerformance(served, paired, last_scored, last_judged)
