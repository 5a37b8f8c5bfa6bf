"""Serving, Dagster-free: the daily scores a user trades on, and the prediction log they land in.

A prediction for date D uses the feature rows of D (computed from bars at or before D's close)
and the versions that served at D's close: the production version (the champion) and, while a
staging version waits for review, that version too (the challenger, in shadow).
"""

from mlplatform.serving.log import PredictionLog
from mlplatform.serving.predict import (
    PREDICTION_COLUMNS,
    ServingModel,
    features_of_date,
    score,
)

__all__ = [
    "PREDICTION_COLUMNS",
    "PredictionLog",
    "ServingModel",
    "features_of_date",
    "score",
]
