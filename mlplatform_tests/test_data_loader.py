"""load_prices / validate_prices: happy paths and named errors for bad input."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplatform.data import (
    PRICE_COLUMNS,
    DataValidationError,
    fingerprint,
    generate_market,
    load_prices,
    validate_prices,
)

MIN = 3  # tiny history requirement so hand-written files stay small


def bars(ticker: str = "AAPL", n: int = 5, start: str = "2024-03-04") -> pd.DataFrame:
    """A valid long-format frame of n business days."""
    dates = pd.bdate_range(start, periods=n)
    close = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "date": dates,
            "ticker": ticker,
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": 1000.0 + np.arange(n),
        }
    )


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return generate_market(seed=7, n_tickers=3, years=1, as_of="2024-06-28").prices


# --- happy paths ------------------------------------------------------------------------------


def test_long_csv_round_trip_is_exact(tmp_path: Path, market: pd.DataFrame) -> None:
    path = write_csv(tmp_path / "prices.csv", market.sample(frac=1.0, random_state=1))
    loaded = load_prices(path)
    pd.testing.assert_frame_equal(loaded, market, check_exact=True)
    assert list(loaded.columns) == list(PRICE_COLUMNS)
    assert isinstance(loaded.index, pd.RangeIndex)
    assert fingerprint(loaded) == fingerprint(market)


def test_long_parquet_with_symbol_column_and_odd_case(tmp_path: Path, market: pd.DataFrame) -> None:
    frame = market.rename(
        columns={"ticker": "Symbol", "open": "OPEN", "high": " High ", "volume": "Vol_ume"}
    )
    frame.to_parquet(tmp_path / "prices.parquet", index=False)
    pd.testing.assert_frame_equal(load_prices(tmp_path / "prices.parquet"), market)


def test_parquet_with_date_index(tmp_path: Path) -> None:
    frame = bars("MSFT").set_index("date").drop(columns="ticker")
    frame.to_parquet(tmp_path / "msft.parquet")
    loaded = load_prices(tmp_path / "msft.parquet", min_history_days=MIN)
    assert loaded["ticker"].unique().tolist() == ["MSFT"]
    assert len(loaded) == 5


def test_folder_of_files_ticker_from_stem(tmp_path: Path) -> None:
    write_csv(tmp_path / "aapl.csv", bars("x").drop(columns="ticker"))
    bars("y", start="2024-03-05").drop(columns="ticker").to_parquet(tmp_path / "Msft.parquet")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "sub").mkdir()
    loaded = load_prices(tmp_path, min_history_days=MIN)
    assert loaded["ticker"].unique().tolist() == ["AAPL", "MSFT"]
    assert loaded.groupby("ticker", observed=True)["date"].min().tolist() == [
        pd.Timestamp("2024-03-04"),
        pd.Timestamp("2024-03-05"),
    ]


def test_adj_close_used_and_bar_scaled(tmp_path: Path) -> None:
    frame = bars().drop(columns="ticker")
    frame["Adj Close"] = frame["close"] * 0.5  # a 2:1 split not in the raw prices
    frame = frame.rename(columns={"date": "Date", "close": "Close", "open": "Open"})
    path = write_csv(tmp_path / "aapl.csv", frame)
    adjusted = load_prices(path, min_history_days=MIN)
    raw = bars()
    np.testing.assert_allclose(adjusted["close"], raw["close"] * 0.5)
    np.testing.assert_allclose(adjusted["open"], raw["open"] * 0.5)
    np.testing.assert_allclose(adjusted["high"], raw["high"] * 0.5)
    np.testing.assert_allclose(adjusted["volume"], raw["volume"])
    unadjusted = load_prices(path, price_column="close", min_history_days=MIN)
    np.testing.assert_allclose(unadjusted["close"], raw["close"])
    np.testing.assert_allclose(unadjusted["open"], raw["open"])


def test_adj_close_snake_case_keeps_bars_consistent(tmp_path: Path) -> None:
    frame = bars()
    frame["high"] = frame["close"]  # high == close: float rounding of adj must not break it
    frame["adj_close"] = frame["close"] * (1 / 3)
    loaded = load_prices(write_csv(tmp_path / "p.csv", frame), min_history_days=MIN)
    assert (loaded["high"] >= loaded[["open", "close"]].max(axis=1)).all()
    assert (loaded["close"] == frame["adj_close"]).all()


def test_unsorted_rows_are_sorted(tmp_path: Path) -> None:
    frame = pd.concat([bars("B"), bars("A")]).iloc[::-1]
    loaded = load_prices(write_csv(tmp_path / "p.csv", frame), min_history_days=MIN)
    assert loaded["ticker"].tolist() == ["A"] * 5 + ["B"] * 5
    assert loaded["date"].is_monotonic_increasing is False  # two tickers
    assert (
        loaded.groupby("ticker", observed=True)["date"]
        .apply(lambda d: d.is_monotonic_increasing)
        .all()
    )


def test_tz_aware_dates_keep_local_date_including_dst(tmp_path: Path) -> None:
    frame = bars(n=5, start="2024-03-06")  # US DST starts 2024-03-10
    offsets = ["-05:00", "-05:00", "-05:00", "-04:00", "-04:00"]
    frame["date"] = [
        f"{d:%Y-%m-%d}T00:00:00{o}" for d, o in zip(frame["date"], offsets, strict=True)
    ]
    loaded = load_prices(write_csv(tmp_path / "p.csv", frame), min_history_days=MIN)
    assert loaded["date"].tolist() == list(pd.bdate_range("2024-03-06", periods=5))
    assert loaded["date"].dt.tz is None


def test_validate_prices_accepts_text_dates_and_names_source() -> None:
    frame = bars()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d 16:00")
    out = validate_prices(frame, source="api", min_history_days=MIN)
    assert (out["date"] == out["date"].dt.normalize()).all()
    # tickers as a categorical whose categories are the sorted names (codes order like them)
    assert list(out["ticker"].cat.categories) == sorted(frame["ticker"].unique())
    frame.loc[2, "low"] = 500.0
    with pytest.raises(DataValidationError) as err:
        validate_prices(frame, source="api", min_history_days=MIN)
    assert (err.value.file, err.value.ticker, err.value.date, err.value.column) == (
        "api",
        "AAPL",
        "2024-03-06",
        "low",
    )


def test_tickers_that_differ_by_spaces_are_one_ticker() -> None:
    frame = pd.concat([bars("MSFT"), bars("AAPL", n=8)], ignore_index=True)
    frame.loc[frame.index[-3:], "ticker"] = " AAPL "  # the same instrument, spaced in a file
    out = validate_prices(frame.iloc[::-1], source="api", min_history_days=MIN)
    assert list(out["ticker"].cat.categories) == ["AAPL", "MSFT"]
    assert out["ticker"].tolist() == ["AAPL"] * 8 + ["MSFT"] * 5
    assert out["date"].is_monotonic_increasing is False  # sorted per ticker, not overall
    assert out.loc[out["ticker"] == "AAPL", "date"].is_monotonic_increasing


def test_error_str_and_pickle() -> None:
    import pickle

    err = DataValidationError("bad", file="p.csv", ticker="AAPL", date="2024-03-05", column="high")
    assert str(err) == "p.csv: ticker AAPL, date 2024-03-05, column high: bad"
    again = pickle.loads(pickle.dumps(err))
    assert (again.file, again.ticker, again.column, str(again)) == (
        "p.csv",
        "AAPL",
        "high",
        str(err),
    )
    assert str(DataValidationError("only reason")) == "only reason"


# --- bad input: each names where the problem is ------------------------------------------------


def _with(change: Callable[[pd.DataFrame], pd.DataFrame], name: str = "p.csv"):
    def build(tmp: Path) -> Path:
        return write_csv(tmp / name, change(bars()))

    return build


def _set(row: int, column: str, value: object):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})
        frame.loc[row, column] = value
        return frame

    return change


def _text(name: str, content: str | bytes):
    def build(tmp: Path) -> Path:
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return build


def _dup_tickers(tmp: Path) -> Path:
    write_csv(tmp / "aapl.csv", bars().drop(columns="ticker"))
    bars().drop(columns="ticker").to_parquet(tmp / "AAPL.parquet")
    return tmp


def _empty_folder(tmp: Path) -> Path:
    (tmp / "prices").mkdir()
    return tmp / "prices"


def _stray_file_in_folder(tmp: Path) -> Path:
    write_csv(tmp / "aapl.csv", bars().drop(columns="ticker"))
    (tmp / "msft.xlsx").write_bytes(b"PK")
    return tmp


def _dates(values: list[str]):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({"date": object})
        frame["date"] = values
        return frame

    return change


HEADER = "date,ticker,open,high,low,close,volume\n"

BAD_CASES = {
    "missing path": (lambda tmp: tmp / "nope.csv", {"file": "nope.csv"}, "does not exist"),
    "empty file": (_text("p.csv", ""), {"file": "p.csv"}, "empty"),
    "header only": (_text("p.csv", HEADER), {"file": "p.csv"}, "no data rows"),
    "semicolon delimiter": (
        _text("p.csv", HEADER.replace(",", ";") + "2024-03-04;A;1;2;1;1;5\n"),
        {"file": "p.csv"},
        "';'",
    ),
    "missing column": (
        _with(lambda f: f.drop(columns="volume")),
        {"file": "p.csv", "column": "volume"},
        "missing column 'volume'",
    ),
    "unparseable date": (
        _with(_set(2, "date", "2024-13-45")),
        {"file": "p.csv", "ticker": "AAPL", "date": "2024-13-45", "column": "date"},
        "line 4",
    ),
    "naive and aware dates": (
        _with(
            _dates(
                [
                    "2024-03-04",
                    "2024-03-05",
                    "2024-03-06T00:00:00+00:00",
                    "2024-03-07",
                    "2024-03-08",
                ]
            )
        ),
        {"ticker": "AAPL", "date": "2024-03-06T00:00:00+00:00", "column": "date"},
        "naive",
    ),
    "mixed time zones": (
        _with(
            _dates(
                [f"2024-03-0{d}T00:00:00{'+09:00' if d == 7 else '-05:00'}" for d in range(4, 9)]
            )
        ),
        {"ticker": "AAPL", "date": "2024-03-07T00:00:00+09:00", "column": "date"},
        "time zones",
    ),
    "duplicate ticker and date": (
        _with(_set(3, "date", "2024-03-05")),
        {"ticker": "AAPL", "date": "2024-03-05", "column": None},
        "duplicate",
    ),
    "same ticker in two files": (_dup_tickers, {"ticker": "AAPL"}, "two files"),
    "missing value": (
        _with(_set(1, "close", np.nan)),
        {"ticker": "AAPL", "date": "2024-03-05", "column": "close"},
        "missing",
    ),
    "negative price": (
        _with(_set(4, "low", -1.0)),
        {"ticker": "AAPL", "date": "2024-03-08", "column": "low"},
        "not positive",
    ),
    "high below close": (
        _with(_set(0, "high", 99.9)),
        {"ticker": "AAPL", "date": "2024-03-04", "column": "high"},
        "high 99.9 is below max(open, close) 100.0",
    ),
    "low above open": (
        _with(_set(2, "low", 101.8)),
        {"ticker": "AAPL", "date": "2024-03-06", "column": "low"},
        "above min(open, close)",
    ),
    "too little history": (
        lambda tmp: write_csv(tmp / "p.csv", pd.concat([bars("ZZZ", 2), bars("AAA", 9)])),
        {"file": "p.csv", "ticker": "ZZZ", "column": None},
        "only 2 bars",
    ),
    "unsupported extension": (_text("p.xlsx", "x"), {"file": "p.xlsx"}, "unsupported"),
    "stray file in folder": (_stray_file_in_folder, {"file": "msft.xlsx"}, "unsupported"),
    "non-numeric price": (
        _with(_set(3, "open", "12,5")),
        {"ticker": "AAPL", "date": "2024-03-07", "column": "open"},
        "'12,5' is not a number",
    ),
    "empty folder": (_empty_folder, {"file": "prices"}, "no price files"),
    "negative volume": (
        _with(_set(1, "volume", -5)),
        {"ticker": "AAPL", "date": "2024-03-05", "column": "volume"},
        "negative",
    ),
    "not utf-8": (_text("p.csv", b"date,open\n\xff\xfe\x00garbage\n"), {"file": "p.csv"}, "UTF-8"),
    "infinite price": (
        _with(_set(2, "close", "inf")),
        {"ticker": "AAPL", "date": "2024-03-06", "column": "close"},
        "infinite",
    ),
    "missing ticker value": (
        _with(_set(1, "ticker", np.nan)),
        {"file": "p.csv", "column": "ticker"},
        "line 3",
    ),
    "two columns mean close": (
        _with(lambda f: f.assign(Close=f["close"])),
        {"file": "p.csv", "column": "close"},
        "both mean 'close'",
    ),
    "zero adjusted close": (
        _with(lambda f: f.assign(adj_close=[1.0, 0.0, 1.0, 1.0, 1.0])),
        {"ticker": "AAPL", "date": "2024-03-05", "column": "adj_close"},
        "positive",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_bad_input_is_named(tmp_path: Path, case: str) -> None:
    build, where, text = BAD_CASES[case]
    path = build(tmp_path)
    with pytest.raises(DataValidationError) as caught:
        load_prices(path, min_history_days=MIN)
    err = caught.value
    for attribute, expected in where.items():
        actual = getattr(err, attribute)
        if attribute == "file":
            assert actual is not None and Path(actual).name == expected, str(err)
        else:
            assert actual == expected, f"{attribute}: {err}"
    assert text in str(err)
    for attribute in ("ticker", "date", "column"):  # every known part is in the message
        if getattr(err, attribute) is not None:
            assert f"{attribute} {getattr(err, attribute)}" in str(err)


def test_adj_close_demanded_but_absent(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", bars())
    with pytest.raises(DataValidationError) as err:
        load_prices(path, price_column="adj_close", min_history_days=MIN)
    assert err.value.column == "adj_close"
    with pytest.raises(ValueError, match="price_column"):
        load_prices(path, price_column="typo")


# --- fuzz: any bytes either load or raise DataValidationError ----------------------------------

_FUZZ_DIR = Path(tempfile.mkdtemp(prefix="mlplatform-fuzz-"))
_CSVISH = st.text(alphabet=st.sampled_from(list('0123456789-.,;:+TZ eE\n"naAbc\t')), max_size=300)


def _load_bytes(data: bytes) -> None:
    path = _FUZZ_DIR / "fuzz.csv"
    path.write_bytes(data)
    with contextlib.suppress(DataValidationError):
        load_prices(path, min_history_days=1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _load_bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CSVISH)
def test_csv_like_text_under_a_valid_header_never_crashes(body: str) -> None:
    _load_bytes(("Date,Ticker,Open,High,Low,Close,Adj Close,Volume\n" + body).encode())
