"""The prices frame: its pandera schema and the validation every data source goes through.

`PRICES_SCHEMA` is what Dagster shows as the asset's type (column descriptions and checks).
`validate_prices` turns any frame with the right columns into the canonical frame or raises a
`DataValidationError` that names source, ticker, date and column of the first violation. The
checks run in a fixed order (columns, types, missing keys, future dates, duplicates, missing
values, finiteness, positive and plausible prices, volume, OHLC consistency, history length),
and within one check the first row in (ticker, date) order is reported. Everything is vectorised;
the schema runs last as a guard so the function and the schema can never disagree about what a
valid frame is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa

from mlplatform import config
from mlplatform.data._parse import parse_dates, to_float64
from mlplatform.data.errors import DataValidationError

PRICE_COLUMNS: tuple[str, ...] = ("date", "ticker", "open", "high", "low", "close", "volume")
OHLC_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
VALUE_COLUMNS: tuple[str, ...] = (*OHLC_COLUMNS, "volume")


def in_canonical_order(df: pd.DataFrame) -> bool:
    """Sorted by ticker, dates strictly increasing within a ticker (so (ticker, date) unique)."""
    if len(df) < 2:
        return True
    codes, _ = pd.factorize(df["ticker"], sort=True)
    if (codes < 0).any():
        return False
    dates = df["date"].to_numpy()
    later = codes[1:] > codes[:-1]
    return bool(np.all(later | ((codes[1:] == codes[:-1]) & (dates[1:] > dates[:-1]))))


def _tickers_non_empty(series: pd.Series) -> bool:
    return bool((pd.Series(series.unique()).astype(str).str.len() > 0).all())


def _is_text(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.CategoricalDtype) and pd.api.types.infer_dtype(
        series.cat.categories, skipna=False
    ) in ("string", "empty")


def _positive_finite(series: pd.Series) -> pd.Series:
    return np.isfinite(series) & (series > 0)


def _check(fn: Any, name: str, error: str) -> pa.Check:
    """A check on every row: the columns are non-nullable already, so pandera's default
    `ignore_na=True` would only mask NaNs (isna over every column) for nothing."""
    return pa.Check(fn, name=name, error=error, ignore_na=False)


def _price_column(description: str) -> pa.Column:
    return pa.Column(
        "float64",
        _check(_positive_finite, name="positive_finite", error="> 0 and finite"),
        nullable=False,
        description=description,
    )


PRICES_SCHEMA = pa.DataFrameSchema(
    {
        "date": pa.Column(
            "datetime64[ns]",
            _check(lambda s: s == s.dt.normalize(), name="midnight", error="normalised"),
            nullable=False,
            title="Trading date",
            description="Session date, tz-naive, normalised to midnight (exchange-local date).",
        ),
        # Categorical (sorted categories, see validate_prices): the frame pickles as small ints
        # and every step factorizes the codes instead of 5 M strings.
        "ticker": pa.Column(
            "category",
            [
                _check(_is_text, name="is_str", error="str categories"),
                _check(_tickers_non_empty, name="non_empty", error="non-empty"),
            ],
            nullable=False,
            title="Ticker",
            description="Instrument symbol, upper case.",
        ),
        "open": _price_column(
            "Opening price (split/dividend adjusted when the source had Adj Close)."
        ),
        "high": _price_column("Session high; at least max(open, close)."),
        "low": _price_column("Session low; at most min(open, close)."),
        "close": _price_column("Closing price (the adjusted close when the source had one)."),
        "volume": pa.Column(
            "float64",
            _check(lambda s: np.isfinite(s) & (s >= 0), name="non_negative", error=">= 0"),
            nullable=False,
            description="Traded volume in shares; non-negative.",
        ),
    },
    checks=[
        _check(
            lambda df: df["high"] >= np.maximum(df["open"], df["close"]),
            name="high_ge_open_close",
            error="high >= max(open, close)",
        ),
        _check(
            lambda df: df["low"] <= np.minimum(df["open"], df["close"]),
            name="low_le_open_close",
            error="low <= min(open, close)",
        ),
        _check(
            in_canonical_order,
            name="sorted_unique",
            error="sorted by ticker then date, dates strictly increasing per ticker",
        ),
    ],
    strict=True,
    ordered=True,
    coerce=False,
    name="prices",
    title="Daily OHLCV bars (long format)",
    description=(
        "One row per (ticker, trading date): date, ticker, open, high, low, close, volume; "
        "sorted by ticker then date; validated by mlplatform.data.validate_prices."
    ),
)


def _fmt(value: float) -> str:
    """Shortest text that reads back as the same float: 4676.69 and 4676.68994140625 differ."""
    return repr(float(value))


def latest_allowed_date(as_of: str | date | None = None) -> pd.Timestamp:
    """The last date a bar may carry: `as_of`, or today where the calendar is furthest ahead
    (UTC+14), so an exchange east of this machine never has its today's bar refused."""
    if as_of is not None:
        try:
            return pd.Timestamp(as_of).normalize()
        except (ValueError, TypeError):
            raise DataValidationError(f"as_of {as_of!r} is not a date (YYYY-MM-DD)") from None
    return (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=14)).tz_localize(None).normalize()


class _Locator:
    """Turns a row position of the frame being validated into the error's location."""

    def __init__(
        self, frame: pd.DataFrame, source: str, ticker_sources: Mapping[str, str] | None
    ) -> None:
        self.frame = frame
        self.source = source
        self.ticker_sources = ticker_sources or {}

    def error(self, reason: str, position: int | None = None, column: str | None = None):
        ticker = date = None
        if position is not None:
            row = self.frame.iloc[position]
            ticker = row.get("ticker")
            date = row.get("date")
            if ticker is not None and pd.isna(ticker):
                ticker = None
            if date is not None and not isinstance(date, str) and pd.isna(date):
                date = None
        file = self.ticker_sources.get(ticker, self.source) if ticker else self.source
        return DataValidationError(reason, file=file, ticker=ticker, date=date, column=column)


def validate_prices(
    df: pd.DataFrame,
    *,
    source: str,
    min_history_days: int = config.MIN_HISTORY_DAYS,
    as_of: str | date | None = None,
    ticker_sources: Mapping[str, str] | None = None,
    note: str = "",
) -> pd.DataFrame:
    """The canonical prices frame from `df`, or a DataValidationError naming the first problem.

    `df` needs the columns in PRICE_COLUMNS (extra columns are dropped). Dates may be datetimes
    or text; tz-aware stamps keep their wall-clock date; none may be after `as_of` (default
    today, see latest_allowed_date). Rows are sorted by ticker then date; unsorted input is fine,
    a repeated (ticker, date) is not. `source` names the data in errors; `ticker_sources` (ticker
    -> file) names the right file of a folder, `note` is added to price errors.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"expected a DataFrame, got {type(df).__name__}", file=source)
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"missing column {missing[0]!r} (found {[str(c) for c in df.columns]})",
            file=source,
            column=missing[0],
        )
    if df.empty:
        raise DataValidationError("no rows", file=source)

    raw = df.loc[:, list(PRICE_COLUMNS)].reset_index(drop=True)
    locate = _Locator(raw, source, ticker_sources)

    # --- keys: ticker and date ---------------------------------------------------------------
    codes, uniques = pd.factorize(raw["ticker"])  # string work on distinct tickers only
    absent = codes < 0
    if absent.any():
        raise locate.error("ticker is missing", int(absent.argmax()), "ticker")
    stripped = np.array([str(u).strip() for u in uniques], dtype=object)
    empty = (stripped == "")[codes]
    if empty.any():
        raise locate.error("ticker is empty", int(empty.argmax()), "ticker")
    names, merged = np.unique(stripped, return_inverse=True)  # sorted; "A " is "A"
    tickers = pd.Categorical.from_codes(merged[codes], categories=pd.Index(names, dtype=object))

    dates, problem = parse_dates(raw["date"])
    if problem is not None:
        err = locate.error(problem.reason, problem.position, "date")
        raise DataValidationError(
            f"{problem.reason}: {problem.text!r} (row {problem.position + 1})",
            file=err.file,
            ticker=err.ticker,
            date=problem.text or None,
            column="date",
        )

    frame = pd.DataFrame({"date": dates.to_numpy(), "ticker": tickers})
    locate.frame = frame
    for column in VALUE_COLUMNS:
        values, problem = to_float64(raw[column])
        if problem is not None:
            raise locate.error(
                f"value {problem.text!r} {problem.reason} (row {problem.position + 1})",
                problem.position,
                column,
            )
        frame[column] = values

    # --- order and uniqueness ------------------------------------------------------------------
    frame = frame.sort_values(["ticker", "date"], kind="mergesort", ignore_index=True)
    locate.frame = frame
    latest = latest_allowed_date(as_of)
    future = (frame["date"] > latest).to_numpy()
    if future.any():
        position = int(future.argmax())
        since = "the as-of date" if as_of is not None else "today"
        raise locate.error(
            f"bar is dated after {since} {latest:%Y-%m-%d} ({int(future.sum())} future-dated "
            "bars); a date typo or a shifted file?",
            position,
            "date",
        )
    codes = frame["ticker"].cat.codes.to_numpy()
    dates_ns = frame["date"].to_numpy()
    same_ticker = np.r_[False, codes[1:] == codes[:-1]]
    dup = same_ticker & np.r_[False, dates_ns[1:] == dates_ns[:-1]]
    if dup.any():
        raise locate.error("duplicate (ticker, date): the date appears twice", int(dup.argmax()))

    # --- values ----------------------------------------------------------------------------------
    values = frame[list(VALUE_COLUMNS)].to_numpy()
    for test, reason in (
        (np.isnan, "value is missing (NaN)"),
        (np.isinf, "value is infinite"),
    ):
        bad = test(values)
        rows = bad.any(axis=1)
        if rows.any():
            position = int(rows.argmax())
            column = VALUE_COLUMNS[int(bad[position].argmax())]
            raise locate.error(reason + note, position, column)

    prices = values[:, :4]
    bad = prices <= 0
    rows = bad.any(axis=1)
    if rows.any():
        position = int(rows.argmax())
        column = OHLC_COLUMNS[int(bad[position].argmax())]
        raise locate.error(
            f"{column} {_fmt(prices[position, OHLC_COLUMNS.index(column)])} is not positive" + note,
            position,
            column,
        )
    huge = prices > config.MAX_PRICE
    rows = huge.any(axis=1)
    if rows.any():
        position = int(rows.argmax())
        column = OHLC_COLUMNS[int(huge[position].argmax())]
        raise locate.error(
            f"{column} {_fmt(prices[position, OHLC_COLUMNS.index(column)])} is implausibly large "
            f"(above config.MAX_PRICE {_fmt(config.MAX_PRICE)}): features would overflow" + note,
            position,
            column,
        )
    volume = values[:, 4]
    bad_volume = volume < 0
    if bad_volume.any():
        position = int(bad_volume.argmax())
        raise locate.error(f"volume {_fmt(volume[position])} is negative", position, "volume")
    huge_volume = volume > config.MAX_VOLUME
    if huge_volume.any():
        position = int(huge_volume.argmax())
        raise locate.error(
            f"volume {_fmt(volume[position])} is implausibly large (above config.MAX_VOLUME "
            f"{_fmt(config.MAX_VOLUME)}): features would overflow",
            position,
            "volume",
        )

    # High and low within float32 rounding of the wrong side are snapped onto open/close, so a
    # float32 close beside a float64 high is not an error (and PRICES_SCHEMA holds exactly).
    open_, high, low, close = prices.T
    top = np.maximum(open_, close)
    high = np.where((high < top) & (high >= top * (1 - config.OHLC_REL_TOLERANCE)), top, high)
    bottom = np.minimum(open_, close)
    low = np.where((low > bottom) & (low <= bottom * (1 + config.OHLC_REL_TOLERANCE)), bottom, low)
    frame["high"], frame["low"] = high, low
    below = high < top
    if below.any():
        position = int(below.argmax())
        raise locate.error(
            f"high {_fmt(high[position])} is below max(open, close) {_fmt(top[position])}" + note,
            position,
            "high",
        )
    above = low > bottom
    if above.any():
        position = int(above.argmax())
        raise locate.error(
            f"low {_fmt(low[position])} is above min(open, close) {_fmt(bottom[position])}" + note,
            position,
            "low",
        )

    # --- history -------------------------------------------------------------------------------
    counts = np.bincount(codes)
    short = np.flatnonzero(counts < min_history_days)
    if short.size:
        first = int(short[0])  # codes follow the sorted order, so this is the first ticker
        ticker = str(frame["ticker"].iat[int(np.argmax(codes == first))])
        raise DataValidationError(
            f"only {int(counts[first])} bars, at least {min_history_days} are needed "
            "(config.MIN_HISTORY_DAYS)",
            file=(ticker_sources or {}).get(ticker, source),
            ticker=ticker,
        )

    return _schema_guard(frame, locate)


def _schema_guard(frame: pd.DataFrame, locate: _Locator) -> pd.DataFrame:
    """Run PRICES_SCHEMA; translate a pandera failure into the project's error."""
    try:
        return PRICES_SCHEMA.validate(frame, lazy=False)
    except pa_errors.SchemaError as err:
        column = getattr(err.schema, "name", None) if isinstance(err.schema, pa.Column) else None
        position = None
        cases = err.failure_cases
        if isinstance(cases, pd.DataFrame) and "index" in cases and len(cases):
            index = cases["index"].iloc[0]
            if index is not None and not pd.isna(index) and index in frame.index:
                position = int(frame.index.get_loc(index))
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise locate.error(f"schema check failed: {first_line}", position, column) from None
