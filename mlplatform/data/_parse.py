"""Vectorised coercion of raw columns (text from CSV, anything from Parquet or a caller).

The helpers never raise: they return the converted values plus the position of the first value
that failed, so the caller can raise a `DataValidationError` naming file, ticker, date and column.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplatform import config

# What date_format is called where the platform, not a caller of load_prices, reads the file.
PLATFORM_SETTING = f"the platform reads it from {config.DATE_FORMAT_ENV}"

# The one tolerated spread of UTC offsets inside one file: a daylight-saving shift.
_MAX_OFFSET_SPREAD = pd.Timedelta(hours=1)
# Day and month as numbers before the year (03/05/2024, 03.05.2024, 3-5-24): the order is unknown.
_NUMERIC_DATE = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{2}|\d{4})$")


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


def parse_dates(
    values: pd.Series, date_format: str | None = None
) -> tuple[pd.Series, Problem | None]:
    """Trading dates as datetime64[ns], tz-naive, normalised to midnight.

    Time-zone-aware stamps keep their own wall-clock date (a bar stamped
    `2024-03-05T00:00:00-05:00` is the 5 March session), offsets in one column may differ by at
    most the one-hour daylight-saving shift, and naive and aware stamps may not be mixed. Text is
    parsed with `date_format` (strftime codes) when given; else as ISO 8601 (fast path) or, failing
    that, element by element by dateutil. Without a format, a numeric day and month before the year
    that could be either (`03/05/2024`) is a problem, never a guess.
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
    if date_format is not None:
        return _parse_with_format(text, date_format)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # mixed offsets: take the slow path
            parsed = pd.to_datetime(text, format="ISO8601")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        return parsed.astype("datetime64[ns]").dt.normalize(), None
    except (ValueError, TypeError, OverflowError, FutureWarning):
        return _parse_dates_slowly(text)


def _parse_with_format(text: pd.Series, date_format: str) -> tuple[pd.Series, Problem | None]:
    """Every date in the one configured format; the first that does not fit is the problem."""
    if "%" not in date_format:  # "dd/mm/yyyy" would match nothing, line after line
        return text, Problem(
            0, text.iloc[0], f"date_format {date_format!r} has no strftime codes (e.g. '%d/%m/%Y')"
        )
    try:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
    except (ValueError, TypeError) as err:  # a format pandas cannot use at all
        return text, Problem(0, text.iloc[0], f"date_format {date_format!r} is not usable ({err})")
    bad = parsed.isna().to_numpy()
    if bad.any():
        position = int(bad.argmax())
        return text, Problem(
            position,
            text.iloc[position],
            f"date does not match date_format {date_format!r} (or is out of range)",
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]").dt.normalize(), None


def _numeric_order_problem(text: pd.Series, distinct: np.ndarray) -> Problem | None:
    """A day/month-or-month/day date that only a configured date_format can settle."""
    parts = pd.Series(distinct, dtype=object).str.extract(_NUMERIC_DATE)
    matched = parts[0].notna().to_numpy()
    if not matched.any():
        return None
    first = parts[0][matched].astype(int).to_numpy()
    second = parts[2][matched].astype(int).to_numpy()
    items = distinct[matched]
    day_first = items[first > 12]
    month_first = items[second > 12]
    ambiguous = items[(first <= 12) & (second <= 12) & (first != second)]
    separator = parts[1][matched].iloc[0]
    year = "%Y" if len(parts[3][matched].iloc[0]) == 4 else "%y"
    dmy = f"%d{separator}%m{separator}{year}"
    mdy = f"%m{separator}%d{separator}{year}"
    if len(day_first) and len(month_first):
        position = int(text.isin(set(month_first)).to_numpy().argmax())
        return Problem(
            position,
            text.iloc[position],
            f"date reads month-first while {day_first[0]!r} reads day-first; set date_format "
            f"({dmy!r} or {mdy!r}; {PLATFORM_SETTING}) and fix the dates that do not fit",
        )
    if not len(ambiguous):
        return None
    position = int(text.isin(set(ambiguous)).to_numpy().argmax())
    if len(day_first):
        hint = (
            f"other dates read day-first (e.g. {day_first[0]!r}): set date_format {dmy!r} "
            f"({PLATFORM_SETTING})"
        )
    elif len(month_first):
        hint = (
            f"other dates read month-first (e.g. {month_first[0]!r}): set date_format {mdy!r} "
            f"({PLATFORM_SETTING})"
        )
    else:
        hint = (
            f"set date_format ({PLATFORM_SETTING}), e.g. {dmy!r} (day first) or {mdy!r} "
            "(month first)"
        )
    return Problem(
        position, text.iloc[position], f"date is ambiguous (day-first or month-first?); {hint}"
    )


def _parse_dates_slowly(text: pd.Series) -> tuple[pd.Series, Problem | None]:
    """Per distinct string (there are few: one per trading date); finds the first bad row."""
    distinct = pd.unique(text)
    problem = _numeric_order_problem(text, distinct)
    if problem is not None:
        return text, problem
    local: dict[str, pd.Timestamp] = {}
    offset: dict[str, pd.Timedelta | None] = {}
    unparseable: set[str] = set()
    out_of_range: set[str] = set()
    for item in distinct:
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
        try:
            local[item].as_unit("ns")
        except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime is a ValueError
            out_of_range.add(item)

    for bad_items, reason in (
        (unparseable, "date is not parseable"),
        (out_of_range, "date is out of range (years 1677-2262)"),
    ):
        if bad_items:
            position = int(text.isin(bad_items).to_numpy().argmax())
            return text, Problem(position, text.iloc[position], reason)

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
    stamps = pd.to_datetime(text.map(local)).astype("datetime64[ns]")
    return stamps.dt.normalize(), None
