"""Load daily OHLCV bars from CSV or Parquet into the canonical prices frame.

Accepted layouts:

* one long-format file with a ticker (or symbol) column;
* one file without a ticker column: one instrument, ticker = file name stem, upper-cased;
* a folder of such files (hidden files and sub-folders are ignored; any other file whose
  extension is not supported is an error so that a stray `aapl.xlsx` is never silently skipped).

Column names are matched case-insensitively, ignoring spaces, underscores, hyphens and dots
("Adj Close", "adj_close", "ADJ-CLOSE"); `symbol` means ticker, `datetime`/`timestamp` mean date;
other columns are ignored.

Adjusted prices: with `price_column="auto"` (default) an adjusted-close column, when present, is
used as close, and open, high and low are multiplied by the same per-row ratio adj_close / close,
so each bar stays internally consistent and comparable across splits and dividends; volume is
left as reported. `price_column="adj_close"` demands that column; `price_column="close"` uses the
raw close and raw open/high/low unchanged.

Dates: ISO 8601 or another unambiguous form; a numeric day and month that could be read either
way (`04/01/2015`) is refused unless `date_format` (strftime codes, e.g. "%d/%m/%Y") is given.
Bars dated after `as_of` (default: today) are refused, and so are prices above config.MAX_PRICE
and volumes above config.MAX_VOLUME. Cells are text until parsed, so a ticker "NA" or "NULL" is
a ticker; only an empty cell is a missing value.

Every problem is a `DataValidationError` naming file, ticker, date and column where known.
"""

from __future__ import annotations

import csv
import errno
import gzip
import re
import warnings
import zlib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform import config
from mlplatform.data._parse import Problem, parse_dates, to_float64
from mlplatform.data.errors import DataValidationError
from mlplatform.data.schema import PRICE_COLUMNS, validate_prices

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
SUPPORTED_SUFFIXES: tuple[str, ...] = CSV_SUFFIXES + PARQUET_SUFFIXES
PRICE_COLUMN_CHOICES: tuple[str, ...] = ("auto", "adj_close", "close")

_ALIASES: dict[str, str] = {
    "date": "date",
    "datetime": "date",
    "timestamp": "date",
    "ticker": "ticker",
    "symbol": "ticker",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adjclose": "adj_close",
    "adjustedclose": "adj_close",
    "volume": "volume",
}
_REQUIRED: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")
_ADJUST_NOTE = " (prices after scaling open/high/low/close by adj_close/close)"
_OTHER_DELIMITERS: tuple[str, ...] = (";", "\t", "|")


def _column_key(name: object) -> str:
    return re.sub(r"[\s_\-.]+", "", str(name).strip().lower())


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUPPORTED_SUFFIXES if name.endswith(s)), None)


def _stem(path: Path, suffix: str) -> str:
    return path.name[: -len(suffix)].strip().upper()


def load_prices(
    path: str | Path,
    *,
    price_column: str = "auto",
    min_history_days: int = config.MIN_HISTORY_DAYS,
    date_format: str | None = None,
    as_of: str | date | None = None,
) -> pd.DataFrame:
    """The canonical prices frame (see mlplatform.data.schema) from a file or a folder.

    `date_format`: strftime codes of the date column (None: ISO 8601 or unambiguous forms only).
    `as_of`: no bar may be dated later (None: today, see schema.latest_allowed_date).
    """
    if price_column not in PRICE_COLUMN_CHOICES:
        raise ValueError(
            f"price_column must be one of {PRICE_COLUMN_CHOICES}, not {price_column!r}"
        )
    path = Path(path)
    _check_exists(path)

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and not p.is_dir())
        for file in files:
            _check_exists(file)
        if not files:
            raise DataValidationError(
                f"folder holds no price files (expected {', '.join(SUPPORTED_SUFFIXES)})",
                file=path,
            )
    else:
        files = [path]

    frames: list[pd.DataFrame] = []
    ticker_sources: dict[str, str] = {}
    adjusted = False
    for file in files:
        frame, was_adjusted = _read_one(file, price_column=price_column, date_format=date_format)
        adjusted |= was_adjusted
        for ticker in pd.unique(frame["ticker"]):
            if ticker in ticker_sources:
                raise DataValidationError(
                    f"ticker appears in two files: {ticker_sources[ticker]} and {file}",
                    file=file,
                    ticker=ticker,
                )
            ticker_sources[ticker] = str(file)
        frames.append(frame)

    combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return validate_prices(
        combined,
        source=str(path),
        min_history_days=min_history_days,
        ticker_sources=ticker_sources,
        note=_ADJUST_NOTE if adjusted else "",
        as_of=as_of,
    )


def _check_exists(path: Path) -> None:
    """A path that cannot be opened, with the reason the operating system gives."""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DataValidationError(
                "symbolic link loop (the link points back to itself)", file=path
            ) from None
        if err.errno == errno.ENOENT and path.is_symlink():
            raise DataValidationError(
                f"broken symbolic link (its target {path.readlink()} does not exist)", file=path
            ) from None
        if err.errno == errno.ENOENT:
            raise DataValidationError("path does not exist", file=path) from None
        raise DataValidationError(f"cannot be opened: {err.strerror}", file=path) from None


def _read_raw(file: Path, suffix: str) -> pd.DataFrame:
    """The file's table with CSV cells as text; unreadable content becomes our error."""
    try:
        if suffix in CSV_SUFFIXES:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                return pd.read_csv(
                    file,
                    dtype=str,
                    encoding="utf-8-sig",
                    skip_blank_lines=True,
                    low_memory=False,
                    # a trailing comma on every line is an empty last field, never the index
                    index_col=False,
                    # only an empty cell is missing: "NA", "NULL", "NAN" are real tickers
                    keep_default_na=False,
                    na_values=[""],
                )
        table = pd.read_parquet(file)
    except pd.errors.EmptyDataError:
        raise DataValidationError("file is empty", file=file) from None
    except pd.errors.ParserWarning:
        raise DataValidationError(
            "some lines have more values than the header has columns (they would be lost)",
            file=file,
        ) from None
    except (EOFError, zlib.error) as err:
        raise DataValidationError(f"truncated or corrupt gzip ({err})", file=file) from None
    except UnicodeDecodeError as err:
        raise DataValidationError(f"file is not UTF-8 text ({err.reason})", file=file) from None
    except (ValueError, OSError, csv.Error, OverflowError, pa.ArrowException) as err:
        if isinstance(err, gzip.BadGzipFile):
            raise DataValidationError(f"truncated or corrupt gzip ({err})", file=file) from None
        kind = "CSV" if suffix in CSV_SUFFIXES else "Parquet"
        detail = " ".join(str(err).split())[:300]
        raise DataValidationError(f"cannot be read as {kind}: {detail}", file=file) from None
    if not isinstance(table.index, pd.RangeIndex):
        table = table.reset_index()  # a DatetimeIndex written by DataFrame.to_parquet
    return table


def _read_one(
    file: Path, *, price_column: str, date_format: str | None
) -> tuple[pd.DataFrame, bool]:
    """One file as (date, ticker, open, high, low, close, volume) with parsed values."""
    suffix = _suffix(file)
    if suffix is None:
        raise DataValidationError(
            f"unsupported file type {file.suffix or '(none)'!r} "
            f"(expected {', '.join(SUPPORTED_SUFFIXES)})",
            file=file,
        )
    raw = _read_raw(file, suffix)
    is_csv = suffix in CSV_SUFFIXES
    if raw.shape[1] == 0:
        raise DataValidationError("file is empty", file=file)

    columns: dict[str, str] = {}
    for original in raw.columns:
        key = _ALIASES.get(_column_key(original))
        if key is None:
            continue
        if key in columns:
            raise DataValidationError(
                f"columns {columns[key]!r} and {original!r} both mean {key!r}",
                file=file,
                column=key,
            )
        columns[key] = str(original)

    if raw.shape[1] == 1 and "date" not in columns:
        header = str(raw.columns[0])
        used = next((d for d in _OTHER_DELIMITERS if d in header), None)
        if used is not None:
            raise DataValidationError(
                f"the file parses as a single column {header[:80]!r}: it looks delimited by "
                f"{used!r}; save it comma-separated",
                file=file,
            )
    if raw.empty:
        raise DataValidationError("file has a header but no data rows", file=file)

    needed = list(_REQUIRED) + (["adj_close"] if price_column == "adj_close" else [])
    for name in needed:
        if name not in columns:
            raise DataValidationError(
                f"missing column {name!r} (found {[str(c) for c in raw.columns][:20]})",
                file=file,
                column=name,
            )

    raw = raw.reset_index(drop=True)

    def where(position: int) -> str:
        return f"line {position + 2}" if is_csv else f"row {position + 1}"

    # --- ticker ----------------------------------------------------------------------------------
    if "ticker" in columns:
        tickers = raw[columns["ticker"]]
        absent = tickers.isna().to_numpy()
        if absent.any():
            position = int(absent.argmax())
            raise DataValidationError(
                f"ticker is missing ({where(position)})", file=file, column="ticker"
            )
        tickers = tickers.astype(str).str.strip().str.upper()
        empty = (tickers == "").to_numpy()
        if empty.any():
            position = int(empty.argmax())
            raise DataValidationError(
                f"ticker is empty ({where(position)})", file=file, column="ticker"
            )
    else:
        stem = _stem(file, suffix)
        if not stem:
            raise DataValidationError("no ticker column and no file name to use", file=file)
        tickers = pd.Series(stem, index=raw.index, dtype=object)

    # --- dates -----------------------------------------------------------------------------------
    dates, problem = parse_dates(raw[columns["date"]], date_format)
    if problem is not None:
        raise DataValidationError(
            f"{problem.reason}: {problem.text!r} ({where(problem.position)})",
            file=file,
            ticker=tickers.iloc[problem.position],
            date=problem.text or None,
            column="date",
        )

    frame = pd.DataFrame({"date": dates.to_numpy(), "ticker": tickers.to_numpy(dtype=object)})

    def fail(problem: Problem, column: str) -> DataValidationError:
        return DataValidationError(
            f"value {problem.text!r} {problem.reason} ({where(problem.position)})",
            file=file,
            ticker=frame["ticker"].iat[problem.position],
            date=frame["date"].iat[problem.position],
            column=column,
        )

    values: dict[str, np.ndarray] = {}
    for name in ("open", "high", "low", "close", "volume", "adj_close"):
        if name not in columns:
            continue
        numbers, problem = to_float64(raw[columns[name]])
        if problem is not None:
            raise fail(problem, name)
        values[name] = numbers

    use_adjusted = "adj_close" in values and price_column in ("auto", "adj_close")
    if use_adjusted:
        _adjust(values, frame, file, where)
    for name in ("open", "high", "low", "close", "volume"):
        frame[name] = values[name]
    return frame[list(PRICE_COLUMNS)], use_adjusted


def _adjust(
    values: dict[str, np.ndarray],
    frame: pd.DataFrame,
    file: Path,
    where: Callable[[int], str],
) -> None:
    """Scale the whole bar by adj_close / close (in place), snapping float noise at the ends."""
    adj, close = values["adj_close"], values["close"]
    for name, column in (("adj_close", adj), ("close", close)):
        bad = ~(np.isfinite(column) & (column > 0))
        if bad.any():
            position = int(bad.argmax())
            raise DataValidationError(
                f"{name} {float(column[position])!r} must be a positive number to adjust the "
                f"bar by adj_close/close ({where(position)})",
                file=file,
                ticker=frame["ticker"].iat[position],
                date=frame["date"].iat[position],
                column=name,
            )
    ratio = adj / close
    high, low = values["high"], values["low"]
    values["open"] = values["open"] * ratio
    # high >= close before scaling must stay true after it, whatever the rounding of adj
    values["high"] = np.where(high >= close, np.maximum(high * ratio, adj), high * ratio)
    values["low"] = np.where(low <= close, np.minimum(low * ratio, adj), low * ratio)
    values["close"] = adj
