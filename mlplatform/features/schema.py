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

# What each kind of feature means to a person reading the UI, filled from its own parameters.
_KIND_DESCRIPTIONS = {
    "log_return": "Log return over the last {lag} bar(s): log(close[t] / close[t-{lag}]).",
    "realised_vol": "Std of the last {window} one-bar log returns (not annualised).",
    "rsi": "Wilder RSI over {window} bars, 0-100 (50 on a flat window).",
    "macd_line": "MACD line: (EMA{fast} - EMA{slow} of close) / close.",
    "macd_signal": "MACD signal: EMA{signal} of the MACD line.",
    "macd_hist": "MACD histogram: MACD line minus its signal.",
    "bollinger_pctb": "Bollinger %B: where close sits in the {window}-bar band of +-{n_std} std "
    "(0 = lower band, 1 = upper band).",
    "atr": "Wilder average true range over {window} bars, divided by close.",
    "volume_zscore": "Z-score of log(1 + volume) against its trailing {window} bars.",
    "intraday_range": "Intraday range: (high - low) / close.",
    "overnight_gap": "Overnight gap: log(open[t] / close[t-1]).",
    "close_location_value": "Where the close sits in the day's range: -1 at the low, +1 at the "
    "high.",
    "day_of_week": "Day of the week of t: Monday 0 ... Friday 4.",
    "cross_sectional_rank": "Percentile rank of {of} among the tickers on date t, in (0, 1).",
}


def feature_description(name: str) -> str:
    """One sentence on what feature `name` measures, from its parameters in FEATURE_SPEC."""
    params = FEATURE_SPEC[name]
    kind = params["kind"] if params["kind"] != "macd" else f"macd_{params['output']}"
    return _KIND_DESCRIPTIONS[kind].format(**params)


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
