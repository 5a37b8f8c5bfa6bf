"""A content hash of a prices frame: the data part of a model version's identity.

The hash covers the canonical columns only (PRICE_COLUMNS, extra columns ignored), after sorting
by ticker then date, so row order and column order of the input do not matter; values are
hashed as little-endian float64 / int64 nanoseconds / UTF-8 text, with -0.0 folded into 0.0.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from mlplatform.data.errors import DataValidationError
from mlplatform.data.schema import PRICE_COLUMNS, VALUE_COLUMNS

_FORMAT = b"mlplatform.prices.v1"


def fingerprint(prices: pd.DataFrame) -> str:
    """sha256 hex digest of the canonical byte representation of `prices`."""
    missing = [c for c in PRICE_COLUMNS if c not in prices.columns]
    if missing:
        raise DataValidationError(
            f"cannot fingerprint: missing column {missing[0]!r}", column=missing[0]
        )
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(prices["date"]).dt.tz_localize(None)
            if getattr(prices["date"].dtype, "tz", None) is not None
            else pd.to_datetime(prices["date"]),
            "ticker": prices["ticker"].astype(str).to_numpy(dtype=object),
            **{c: prices[c].to_numpy(dtype="float64") for c in VALUE_COLUMNS},
        }
    ).sort_values(["ticker", "date"], kind="mergesort", ignore_index=True)

    digest = hashlib.sha256()
    digest.update(_FORMAT + b"\0" + ",".join(PRICE_COLUMNS).encode() + b"\0")
    digest.update(np.int64(len(frame)).tobytes())
    digest.update(frame["date"].to_numpy(dtype="datetime64[ns]").astype("<i8").tobytes())
    digest.update("\n".join(frame["ticker"]).encode("utf-8") + b"\0")
    for column in VALUE_COLUMNS:
        digest.update((frame[column].to_numpy(dtype="float64") + 0.0).astype("<f8").tobytes())
    return digest.hexdigest()
