"""The promotion policy: what the gate accepts. It belongs to the deployment (code, or the
MLPLATFORM_PROMOTION_POLICY environment variable), never to a run: a value a run could set would
let the person launching it loosen the gate.

Every promotion check records the policy it applied; production_model compares that record with
the deployed policy, so checks run under other thresholds never vouch for a promotion.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

GATE_ONLY = frozenset({"min_shadow_days"})  # applied by production_model, not by a check


class PolicyError(ValueError):
    """A promotion policy value is out of range or unknown; names the field."""


@dataclass(frozen=True)
class PromotionPolicy:
    """The thresholds of the promotion criteria, one check each (see criteria.py)."""

    max_p_value: float = 0.05  # binomial test (by row) and t-test (by date) vs the majority rate
    max_log_loss_increase: float = 0.0  # staging log loss may exceed production's by this much
    min_accuracy_delta: float = 0.0  # staging accuracy >= production accuracy + delta
    min_sharpe: float = 0.0  # long/short Sharpe after costs
    min_dsr: float = 0.95  # Deflated Sharpe Ratio
    min_class_share: float = 0.05  # each class predicted at least this often
    leakage_alarm_accuracy: float = 0.65  # a warning: on daily bars this signals look-ahead
    min_cost_bps: float = 5.0  # the Sharpe counts only when costed at least this (one way)
    # Scored days with known outcomes a staging version must spend in shadow beside production
    # before it may be promoted (0: promote right after its checks; a desk sets 5 or 20).
    min_shadow_days: int = 0

    def __post_init__(self) -> None:
        bounds = {
            "max_p_value": (0.0, 1.0),
            "max_log_loss_increase": (0.0, math.inf),
            "min_accuracy_delta": (-1.0, 1.0),
            "min_sharpe": (-math.inf, math.inf),
            "min_dsr": (0.0, 1.0),
            "min_class_share": (0.0, 0.5),
            "leakage_alarm_accuracy": (0.5, 1.0),
            "min_cost_bps": (0.0, 1000.0),
            "min_shadow_days": (0, 250),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"promotion policy {name}={value!r}: not a number")
            if math.isnan(value) or not low <= value <= high:
                raise PolicyError(f"promotion policy {name}={value!r}: must be in [{low}, {high}]")

    def to_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in asdict(self).items()}

    @property
    def fingerprint(self) -> str:
        """Short hash of every threshold: equal policies, equal fingerprints."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def differences(self, recorded: dict[str, Any] | None) -> list[str]:
        """Each threshold the checks apply that a recorded policy set differently, in words
        (the days in shadow are the gate's own rule, not a check's)."""
        if not recorded:
            return ["no promotion policy was recorded with it"]
        mine = self.to_dict()
        return [
            f"{key} {recorded.get(key, 'unset')} (deployed {value:g})"
            for key, value in mine.items()
            if key not in GATE_ONLY and recorded.get(key) != value
        ]

    def describe(self) -> str:
        return ", ".join(f"{key}={value:g}" for key, value in self.to_dict().items())

    @classmethod
    def from_json(cls, text: str, *, source: str) -> PromotionPolicy:
        """The default policy with the overrides of a JSON object (`source` names where it came
        from in errors), e.g. '{"min_dsr": 0.9}'."""
        try:
            overrides = json.loads(text)
        except ValueError as exc:
            raise PolicyError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(overrides, dict):
            raise PolicyError(f"{source}: expected a JSON object of thresholds, got {text!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise PolicyError(
                f"{source}: unknown threshold(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            return replace(cls(), **overrides)
        except PolicyError as exc:
            raise PolicyError(f"{source}: {exc}") from None
