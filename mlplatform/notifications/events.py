"""The platform's events as notifications: what happened, the figures behind it, what to do next.

Built here from domain results so every channel (log, webhook, Slack) says the same thing in the
words the gate and the checks use.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from mlplatform.notifications.channels import Notification, NotificationKind
from mlplatform.promotion.criteria import CriteriaOutcome
from mlplatform.promotion.decision import OVERRIDE_STEP, PROMOTE_STEP


def retrain_finished(
    outcome: CriteriaOutcome,
    *,
    version: str,
    semver: str | None,
    trigger: str,
    figures: Mapping[str, float],
    link: str | None,
) -> Notification:
    """One per retrain, passed or not: each failing criterion with its figure."""
    fields: dict[str, object] = {
        "staging_version": version,
        "semver": semver,
        "verdict": outcome.line(),
        "trigger": trigger,
        **{name: round(float(value), 4) for name, value in figures.items()},
    }
    fields |= {v.name: f"FAILED — {v.description}" for v in outcome.failing}
    fields |= {v.name: f"warning — {v.description}" for v in outcome.warnings}
    fields["next_step"] = PROMOTE_STEP if outcome.passed else f"not promotable; {OVERRIDE_STEP}"
    return Notification(
        NotificationKind.RETRAIN_FINISHED,
        f"retrain finished: {outcome.headline(version)}",
        fields=fields,
        link=link,
    )


def drift_detected(
    psi: pd.Series, *, threshold: float, window_end: str, reference: str, requested: str
) -> Notification:
    """The sensor acted: which features drifted, by how much, and the run it asked for."""
    drifted = psi[psi >= threshold].sort_values(ascending=False)
    return Notification(
        NotificationKind.DRIFT_DETECTED,
        f"drift detected: {len(drifted)} of {len(psi)} features at PSI ≥ {threshold:g} "
        f"against {reference}; retrain requested",
        fields={
            "window_end": window_end,
            "threshold": threshold,
            **{f"psi_{name}": round(float(value), 4) for name, value in drifted.items()},
            "requested": requested,
        },
    )
