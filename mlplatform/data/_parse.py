"""Vectorised coercion of raw columns (text from CSV, anything from Parquet or a caller).

The helpers never raise: they return the converted values plus the position of the first value
that failed, so the caller can raise a `DataValidationError` naming file, ticker, date and column.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The one tolerated spread of UTC offsets inside one file: a daylight-saving shift.
_MAX_OFFSET_SPREAD = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class Problem:
    """The first value that could not be converted: its row position and what is wrong."""

    position: int
    text: str
    reason: str


def to_float64(values: pd.Series) -> tuple[np.ndarray, Problem | None]:
    """float64 values; a present value that is not a number is a problem (NaN stays NaN)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(len(values), np.nan), Problem(0, str(values.iloc[0]), "is boolean")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan), None
    try:  # numpy converts text with float(): correctly rounded, unlike pandas' fast parser
        return values.to_numpy(dtype=object).astype("float64"), None
    except (TypeError, ValueError, OverflowError):
        pass
    present = values.notna().to_numpy()
    try:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        numbers = np.full(len(values), np.nan)
    bad = present & np.isnan(numbers)
    if bad.any():
        position = int(bad.argmax())
        return numbers, Problem(position, str(values.iloc[position]), "is not a number")
    return numbers, None


def parse_dates(values: pd.Series) -> tuple[pd.Series, Problem | None]:
    """Trading dates as datetime64[ns], tz-naive, normalised to midnight.

    Time-zone-aware stamps keep their own wall-clock date (a bar stamped
    `2024-03-05T00:00:00-05:00` is the 5 March session), offsets in one column may differ by at
    most the one-hour daylight-saving shift, and naive and aware stamps may not be mixed. Text is
    parsed as ISO 8601 (fast path) or, failing that, element by element by dateutil (US
    month-first for `03/05/2024`).
    """
    values = values.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_localize(None)
        missing = stamps.isna().to_numpy()
        if missing.any():
            position = int(missing.argmax())
            return stamps, Problem(position, "NaT", "date is missing")
        return stamps.astype("datetime64[ns]").dt.normalize(), None

    missing = values.isna().to_numpy()
    if missing.any():
        position = int(missing.argmax())
        return values, Problem(position, "", "date is missing")
    text = values.astype(str).str.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # mixed offsets: take the slow path
            parsed = pd.to_datetime(text, format="ISO8601")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        return parsed.astype("datetime64[ns]").dt.normalize(), None
    except (ValueError, TypeError, OverflowError, FutureWarning):
        return _parse_dates_slowly(text)


def _parse_dates_slowly(text: pd.Series) -> tuple[pd.Series, Problem | None]:
    """Per distinct string (there are few: one per trading date); finds the first bad row."""
    local: dict[str, pd.Timestamp] = {}
    offset: dict[str, pd.Timedelta | None] = {}
    unparseable: set[str] = set()
    for item in pd.unique(text):
        try:
            stamp = pd.Timestamp(item)
        except (ValueError, TypeError, OverflowError, ArithmeticError):
            unparseable.add(item)
            continue
        if pd.isna(stamp):
            unparseable.add(item)
            continue
        offset[item] = stamp.utcoffset() if stamp.tz is not None else None
        local[item] = stamp.tz_localize(None) if stamp.tz is not None else stamp

    if unparseable:
        bad = text.isin(unparseable).to_numpy()
        position = int(bad.argmax())
        return text, Problem(position, text.iloc[position], "date is not parseable")

    offsets = text.map(offset)
    aware = offsets.notna().to_numpy()
    if aware.any() and not aware.all():
        position = int((aware != aware[0]).argmax())
        return text, Problem(
            position,
            text.iloc[position],
            f"mixes time-zone-aware and naive dates (row 1 is {text.iloc[0]!r})",
        )
    if aware.any():
        spread = offsets.to_numpy(dtype="timedelta64[ns]")
        far = np.abs(spread - spread[0]) > _MAX_OFFSET_SPREAD.to_timedelta64()
        if far.any():
            position = int(far.argmax())
            return text, Problem(
                position,
                text.iloc[position],
                f"mixes time zones (UTC offset {offsets.iloc[position]} vs "
                f"{offsets.iloc[0]} in row 1)",
            )
    try:
        stamps = pd.to_datetime(text.map(local)).astype("datetime64[ns]")
    except (ValueError, TypeError, OverflowError):
        return text, Problem(0, text.iloc[0], "date is out of range")
    return stamps.dt.normalize(), None
