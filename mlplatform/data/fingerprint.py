"""A content hash of a prices frame: the data part of a model version's identity.

The hash covers the canonical columns only (PRICE_COLUMNS, extra columns ignored), after sorting
by ticker (as text) then date, so row order and column order of the input do not matter; values
are hashed as little-endian float64 / int64 nanoseconds / UTF-8 text, with -0.0 folded into 0.0.
Study names in existing Optuna storages carry the digest: format v1 must never change.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.data.errors import DataValidationError
from mlplatform.data.schema import PRICE_COLUMNS, VALUE_COLUMNS

_FORMAT = b"mlplatform.prices.v1"


def fingerprint(prices: pd.DataFrame, *, until: pd.Timestamp | None = None) -> str:
    """sha256 hex digest of the canonical byte representation of `prices`; with `until`, that of
    its bars dated on or before it (`fingerprint(prices[prices["date"] <= until])`)."""
    missing = [c for c in PRICE_COLUMNS if c not in prices.columns]
    if missing:
        raise DataValidationError(
            f"cannot fingerprint: missing column {missing[0]!r}", column=missing[0]
        )
    dates = pd.to_datetime(prices["date"])
    zone = getattr(dates.dtype, "tz", None)
    if zone is not None:
        dates = dates.dt.tz_localize(None)  # v1 hashes the wall-clock time
    stamps = dates.to_numpy(dtype="datetime64[ns]").view(np.int64)
    # each row's ticker as a code into its distinct values sorted as text: factorized once,
    # only the distinct values converted to text
    codes, distinct = pd.factorize(prices["ticker"], use_na_sentinel=False)  # NaN is "nan"
    text_codes, names = pd.factorize(pd.Index(distinct).astype(str), sort=True)
    codes = text_codes[codes]
    rows = np.ones(len(stamps), dtype=bool)
    if until is not None:
        rows = (stamps <= _wall_clock(until, zone).value) & ~dates.isna().to_numpy()
    order = np.flatnonzero(rows)
    stamps, codes = stamps[order], codes[order]
    if not _sorted(codes, stamps):
        by_ticker_date = np.lexsort((stamps, codes))  # stable: NaT (int64 min) first, as v1
        order, stamps, codes = order[by_ticker_date], stamps[by_ticker_date], codes[by_ticker_date]
    # sorted by ticker, each ticker's rows are one run: its line repeated, the last newline off
    counts = np.bincount(codes, minlength=len(names))
    lines = b"".join(
        (name + "\n").encode("utf-8") * int(n) for name, n in zip(names, counts, strict=True)
    )

    digest = hashlib.sha256()
    digest.update(_FORMAT + b"\0" + ",".join(PRICE_COLUMNS).encode() + b"\0")
    digest.update(np.int64(len(stamps)).tobytes())
    digest.update(stamps.astype("<i8"))
    digest.update(lines[:-1] + b"\0")
    for column in VALUE_COLUMNS:
        values = prices[column].to_numpy(dtype="float64")[order] + 0.0  # -0.0 hashes as 0.0
        digest.update(values.astype("<f8"))
    return digest.hexdigest()


def _sorted(codes: np.ndarray, stamps: np.ndarray) -> bool:
    later = codes[1:] > codes[:-1]
    return bool(np.all(later | ((codes[1:] == codes[:-1]) & (stamps[1:] >= stamps[:-1]))))


def _wall_clock(until: pd.Timestamp, zone: Any) -> pd.Timestamp:
    """`until` as the naive wall-clock time of the dates' zone, comparable with the stamps; a
    naive `until` for zoned dates (or the reverse) cannot be compared, as pandas says too."""
    bound = pd.Timestamp(until)
    if (bound.tz is None) != (zone is None):
        raise TypeError(
            f"cannot compare until={bound} with dates {'in ' + str(zone) if zone else 'naive'}"
        )
    return bound if zone is None else bound.tz_convert(zone).tz_localize(None)
