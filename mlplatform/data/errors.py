"""The one project error for bad input data.

Every loader and validator raises `DataValidationError` so that callers (the Dagster asset, the
CLI, tests) can catch a single type and show the user *where* the problem is: which file, which
ticker, which date and which column, followed by what is wrong.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def _as_text(value: Any) -> str | None:
    """Render a location part; timestamps at midnight print as plain dates."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return "NaT"
        if value == value.normalize() and value.tz is None:
            return value.strftime("%Y-%m-%d")
        return value.isoformat()
    return str(value)


class DataValidationError(ValueError):
    """Bad input data, located as precisely as is known.

    `str(err)` reads like `prices.csv: ticker AAPL, date 2024-03-05, column high: high 99.1 is
    below max(open, close) 100.2`; parts that are unknown are left out. `reason` holds only the
    "what is wrong" part.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: Any = None,
        ticker: Any = None,
        date: Any = None,
        column: Any = None,
    ) -> None:
        self.reason = reason
        self.file: str | None = _as_text(file)
        self.ticker: str | None = _as_text(ticker)
        self.date: str | None = _as_text(date)
        self.column: str | None = _as_text(column)
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = [
            f"{label} {value}"
            for label, value in (
                ("ticker", self.ticker),
                ("date", self.date),
                ("column", self.column),
            )
            if value is not None
        ]
        text = ", ".join(where)
        if self.file is not None:
            text = f"{self.file}: {text}" if text else self.file
        return f"{text}: {self.reason}" if text else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only arguments need help to survive pickling (Dagster serialises errors)
        return (
            _rebuild,
            (self.reason, self.file, self.ticker, self.date, self.column),
        )


def _rebuild(
    reason: str, file: str | None, ticker: str | None, date: str | None, column: str | None
) -> DataValidationError:
    return DataValidationError(reason, file=file, ticker=ticker, date=date, column=column)
