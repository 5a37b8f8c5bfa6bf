"""The feature schema: names, parameters, version and the label definition, hashed as one fact.

`FEATURE_SPEC` is the single source of truth: `compute_features` reads every window and constant
from it, so a parameter change changes both the numbers and `feature_schema_hash()`, and model
versioning (MAJOR on schema change) cannot miss it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Bump when the computation changes in a way the parameters do not show (a formula fix).
FEATURE_VERSION = "1"

RETURN_LAGS: tuple[int, ...] = (1, 2, 5, 10, 21)
VOL_WINDOWS: tuple[int, ...] = (5, 21, 63)
RANKED_FEATURES: tuple[str, ...] = ("ret_1", "ret_5", "ret_21", "vol_21", "volume_z_21", "rsi_14")

LABEL_DEFINITION = (
    "label = 1 if close[t+h] / close[t] - 1 > 0 else 0 (a zero return is 'not up'); "
    "t+h is the h-th next bar of the same ticker; rows without that bar are dropped"
)


def _build_spec() -> dict[str, dict[str, Any]]:
    spec: dict[str, dict[str, Any]] = {}
    for lag in RETURN_LAGS:
        spec[f"ret_{lag}"] = {"kind": "log_return", "lag": lag}
    for window in VOL_WINDOWS:
        spec[f"vol_{window}"] = {"kind": "realised_vol", "window": window, "ddof": 1}
    spec["rsi_14"] = {"kind": "rsi", "window": 14, "smoothing": "wilder"}
    macd = {"kind": "macd", "fast": 12, "slow": 26, "signal": 9, "normalise": "close"}
    for output in ("line", "signal", "hist"):
        spec[f"macd_{output}"] = {**macd, "output": output}
    spec["bb_pctb_20"] = {"kind": "bollinger_pctb", "window": 20, "n_std": 2.0, "ddof": 0}
    spec["atr_14"] = {"kind": "atr", "window": 14, "smoothing": "wilder", "normalise": "close"}
    spec["volume_z_21"] = {"kind": "volume_zscore", "window": 21, "transform": "log1p", "ddof": 1}
    spec["range_hl"] = {"kind": "intraday_range"}
    spec["gap_overnight"] = {"kind": "overnight_gap"}
    spec["clv"] = {"kind": "close_location_value"}
    spec["day_of_week"] = {"kind": "day_of_week"}
    for name in RANKED_FEATURES:
        spec[f"xs_rank_{name}"] = {"kind": "cross_sectional_rank", "of": name}
    return spec


FEATURE_SPEC: dict[str, dict[str, Any]] = _build_spec()
FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_SPEC)


def feature_schema_hash(
    spec: Mapping[str, Mapping[str, Any]] | None = None, version: str | None = None
) -> str:
    """sha256 of the ordered column names, their parameters and FEATURE_VERSION.

    Column order is part of the hash: a model trained on one order must not score another.
    """
    spec = FEATURE_SPEC if spec is None else spec
    payload = {
        "feature_version": FEATURE_VERSION if version is None else version,
        "columns": list(spec),
        "spec": [[name, dict(params)] for name, params in spec.items()],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
