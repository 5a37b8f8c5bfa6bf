"""The promotion criteria, applied to the walk-forward evaluation's metrics: one check each.

Pure: takes the per-model metric dicts the evaluation produced and the thresholds (a
PromotionPolicy), returns one verdict per criterion with the numbers behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlplatform.promotion.policy import PromotionPolicy

STAGING = "staging"
PRODUCTION = "production"


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    description: str
    blocking: bool = True  # a warning criterion never blocks promotion
    numbers: dict[str, Any] = field(default_factory=dict)  # measured: plotted in the UI
    thresholds: dict[str, Any] = field(default_factory=dict)  # configured: shown as text


# Names are the asset-check names; one fact, one place.
BEATS_MAJORITY = "beats_majority_class"
LOG_LOSS_VS_PRODUCTION = "log_loss_not_worse_than_production"
ACCURACY_VS_PRODUCTION = "accuracy_vs_production"
SHARPE_AFTER_COSTS = "sharpe_after_costs_and_dsr"
NOT_DEGENERATE = "predictions_not_degenerate"
LEAKAGE_ALARM = "accuracy_below_leakage_alarm"

BLOCKING_CRITERIA = (
    BEATS_MAJORITY,
    LOG_LOSS_VS_PRODUCTION,
    ACCURACY_VS_PRODUCTION,
    SHARPE_AFTER_COSTS,
    NOT_DEGENERATE,
)
WARNING_CRITERIA = (LEAKAGE_ALARM,)
CRITERION_DESCRIPTIONS = {
    BEATS_MAJORITY: "Accuracy above the window's majority-class rate with p < max_p_value, "
    "both by row (binomial) and by date (t-test of the daily edge).",
    LOG_LOSS_VS_PRODUCTION: "Log loss no worse than the production model's on the same rows.",
    ACCURACY_VS_PRODUCTION: "Accuracy at least production's plus the minimum delta.",
    SHARPE_AFTER_COSTS: "Long/short Sharpe after costs above the floor, Deflated Sharpe high.",
    NOT_DEGENERATE: "Each class predicted at least the minimum share of the time.",
    LEAKAGE_ALARM: "Warning: accuracy this high on daily bars signals look-ahead leakage.",
}


@dataclass(frozen=True)
class CriteriaOutcome:
    """What one evaluation says about a candidate, in the words of its checks."""

    verdicts: tuple[Verdict, ...]

    @property
    def failing(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.blocking and not v.passed]

    @property
    def warnings(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.blocking and not v.passed]

    @property
    def passed(self) -> bool:
        return not self.failing

    def line(self) -> str:
        """The verdict where a data scientist filters (MLflow run and version tags)."""
        return "passed" if self.passed else "failed: " + ", ".join(v.name for v in self.failing)

    def headline(self, version: str) -> str:
        blocking = sum(v.blocking for v in self.verdicts)
        if self.passed:
            return f"staging v{version} passed every promotion criterion: ready for review"
        return f"staging v{version} failed {len(self.failing)} of {blocking} promotion criteria"


def _f(value: Any) -> float:
    return float("nan") if value is None else float(value)


def evaluate_criteria(
    metrics: dict[str, dict[str, Any]], policy: PromotionPolicy, *, cost_bps: float
) -> CriteriaOutcome:
    """One verdict per criterion for the `staging` model against `production` (when present);
    `cost_bps` is the one-way cost the backtest charged (the Sharpe's)."""
    if STAGING not in metrics:
        raise ValueError(f"backtest metrics have no '{STAGING}' entry: {sorted(metrics)}")
    s = metrics[STAGING]
    p = metrics.get(PRODUCTION)
    verdicts: list[Verdict] = []

    p_value = _f(s.get("p_value_vs_majority"))
    # Rows of one date move together: the date-level test must agree with the row-level one.
    p_by_date = _f(s.get("p_value_by_date", p_value))
    verdicts.append(
        Verdict(
            BEATS_MAJORITY,
            p_value < policy.max_p_value and p_by_date < policy.max_p_value,
            f"p = {p_value:.4g} by row, {p_by_date:.4g} by date (each needs < "
            f"{policy.max_p_value}); accuracy {_f(s.get('accuracy')):.4f} vs majority rate "
            f"{_f(s.get('window_majority_rate')):.4f}",
            numbers={
                "p_value": p_value,
                "p_value_by_date": p_by_date,
                "accuracy": _f(s.get("accuracy")),
                "window_majority_rate": _f(s.get("window_majority_rate")),
            },
            thresholds={"max_p_value": policy.max_p_value},
        )
    )

    if p is None:
        verdicts.append(
            Verdict(
                LOG_LOSS_VS_PRODUCTION,
                True,
                "no production model yet: nothing to compare against",
                numbers={"staging_log_loss": _f(s.get("log_loss"))},
            )
        )
        verdicts.append(
            Verdict(
                ACCURACY_VS_PRODUCTION,
                True,
                "no production model yet: nothing to compare against",
                numbers={"staging_accuracy": _f(s.get("accuracy"))},
            )
        )
    else:
        s_ll, p_ll = _f(s.get("log_loss")), _f(p.get("log_loss"))
        verdicts.append(
            Verdict(
                LOG_LOSS_VS_PRODUCTION,
                s_ll <= p_ll + policy.max_log_loss_increase,
                f"staging {s_ll:.5f} vs production {p_ll:.5f} "
                f"(allowed increase {policy.max_log_loss_increase})",
                numbers={"staging_log_loss": s_ll, "production_log_loss": p_ll},
            )
        )
        s_acc, p_acc = _f(s.get("accuracy")), _f(p.get("accuracy"))
        verdicts.append(
            Verdict(
                ACCURACY_VS_PRODUCTION,
                s_acc >= p_acc + policy.min_accuracy_delta,
                f"staging {s_acc:.4f} vs production {p_acc:.4f} "
                f"+ delta {policy.min_accuracy_delta}",
                numbers={
                    "staging_accuracy": s_acc,
                    "production_accuracy": p_acc,
                },
                thresholds={"min_delta": policy.min_accuracy_delta},
            )
        )

    sharpe, dsr = _f(s.get("long_short_sharpe")), _f(s.get("long_short_dsr"))
    costed = cost_bps >= policy.min_cost_bps
    verdicts.append(
        Verdict(
            SHARPE_AFTER_COSTS,
            costed and sharpe > policy.min_sharpe and dsr >= policy.min_dsr,
            f"long/short Sharpe after costs {sharpe:.3f} (needs > {policy.min_sharpe:g}), "
            f"DSR {dsr:.3f} (needs ≥ {policy.min_dsr:g}), costs {cost_bps:g} bps one way"
            + ("" if costed else f" (the policy judges at ≥ {policy.min_cost_bps:g} bps)"),
            numbers={"sharpe": sharpe, "dsr": dsr, "cost_bps": float(cost_bps)},
            thresholds={
                "min_sharpe": policy.min_sharpe,
                "min_dsr": policy.min_dsr,
                "min_cost_bps": policy.min_cost_bps,
            },
        )
    )

    up, down = _f(s.get("up_share")), _f(s.get("down_share"))
    verdicts.append(
        Verdict(
            NOT_DEGENERATE,
            min(up, down) >= policy.min_class_share,
            f"predicted up {up:.1%}, down {down:.1%} (each needs ≥ {policy.min_class_share:.0%})",
            numbers={"up_share": up, "down_share": down},
        )
    )

    accuracy = _f(s.get("accuracy"))
    verdicts.append(
        Verdict(
            LEAKAGE_ALARM,
            not accuracy > policy.leakage_alarm_accuracy,
            f"accuracy {accuracy:.4f} vs alarm level {policy.leakage_alarm_accuracy}: honest "
            "daily-bar models score about 50–53 %; above the alarm, look for look-ahead first",
            blocking=False,
            numbers={"accuracy": accuracy},
            thresholds={"alarm": policy.leakage_alarm_accuracy},
        )
    )
    return CriteriaOutcome(tuple(verdicts))
