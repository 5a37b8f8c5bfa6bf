"""Scoring one trading date with the versions that served at its close."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlplatform.training import predict_up_proba

CHAMPION, CHALLENGER = "champion", "challenger"
PREDICTION_COLUMNS = (
    "date",
    "ticker",
    "p_up",
    "direction",
    "model_name",
    "version",
    "semver",
    "role",
    "feature_schema_hash",
    "scored_at",
)


class ScoringError(ValueError):
    """A date that cannot be scored, named with why (no features, in the future)."""


@dataclass(frozen=True)
class ServingModel:
    """A registered version as it serves: its Booster and what names it in the log."""

    name: str
    version: str
    semver: str
    role: str  # CHAMPION or CHALLENGER
    booster: lgb.Booster
    feature_schema_hash: str


def features_of_date(features: pd.DataFrame, date: pd.Timestamp) -> pd.DataFrame:
    """The feature rows of `date` (every ticker with one); ScoringError when there are none."""
    dates = features.index.get_level_values("date")
    if len(dates) and date > dates.max():
        raise ScoringError(
            f"{date:%Y-%m-%d} is after the last bar ({dates.max():%Y-%m-%d}): nothing to score yet"
        )
    rows = features[dates == date]
    if rows.empty:
        raise ScoringError(
            f"no feature rows for {date:%Y-%m-%d}: not a trading date of these bars "
            "(a holiday, a weekend, or before the first bar with a full warm-up)"
        )
    return rows


def score(rows: pd.DataFrame, models: Sequence[ServingModel], scored_at: datetime) -> pd.DataFrame:
    """One row per (ticker, model): P(up), the predicted direction (up when P(up) > 0.5, as the
    label's rule), and what served it. Empty when no model served."""
    frames = []
    index = rows.index
    for model in models:
        p_up = predict_up_proba(model.booster, rows)
        frames.append(
            pd.DataFrame(
                {
                    "date": index.get_level_values("date"),
                    "ticker": index.get_level_values("ticker").astype(str),
                    "p_up": p_up,
                    "direction": np.where(p_up > 0.5, "up", "down"),
                    "model_name": model.name,
                    "version": model.version,
                    "semver": model.semver,
                    "role": model.role,
                    "feature_schema_hash": model.feature_schema_hash,
                    "scored_at": pd.Timestamp(scored_at),
                }
            )
        )
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in PREDICTION_COLUMNS})
    return pd.concat(frames, ignore_index=True).loc[:, list(PREDICTION_COLUMNS)]
