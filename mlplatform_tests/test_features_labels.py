"""Labels and forward returns on hand-built examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.features import LABEL_DEFINITION, make_labels, outcomes
from mlplatform_tests.test_features_support import make_prices


def _bars(ticker: str, dates: list[str], close: list[float], open_: list[float]) -> pd.DataFrame:
    c, o = np.array(close, float), np.array(open_, float)
    return pd.DataFrame(
        {
            "date": pd.to_datetime(dates),
            "ticker": ticker,
            "open": o,
            "high": np.maximum(o, c) + 1,
            "low": np.minimum(o, c) - 1,
            "close": c,
            "volume": 1000.0,
        }
    )


# XYZ has a calendar gap (no bar on the 4th): "next bar" is the 5th, not a missing day.
HAND = pd.concat(
    [
        _bars(
            "ABC",
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
            close=[10.0, 11.0, 11.0, 10.5],
            open_=[10.0, 10.5, 12.0, 11.0],
        ),
        _bars(
            "XYZ",
            ["2024-01-02", "2024-01-03", "2024-01-05"],
            close=[50.0, 49.0, 49.5],
            open_=[50.0, 40.0, 44.0],
        ),
    ],
    ignore_index=True,
)


def _idx(pairs: list[tuple[str, str]]) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples(
        [(pd.Timestamp(d), t) for d, t in pairs], names=["date", "ticker"]
    )


# HAND's rows with a label at horizon 1 (each ticker's last bar has none)
LABELED_ROWS = [
    ("2024-01-01", "ABC"),
    ("2024-01-02", "ABC"),
    ("2024-01-02", "XYZ"),
    ("2024-01-03", "ABC"),
    ("2024-01-03", "XYZ"),
]


def test_labels_hand_example_with_zero_return_rule() -> None:
    labels = make_labels(HAND, horizon=1)
    expected = pd.Series(
        # ABC: 10->11 up, 11->11 zero return = not up, 11->10.5 down; XYZ: 50->49, 49->49.5
        [1, 0, 0, 0, 1],
        index=_idx(LABELED_ROWS),
        name="label",
        dtype=np.int8,
    )
    pd.testing.assert_series_equal(labels, expected)


def test_labels_horizon_two() -> None:
    labels = make_labels(HAND, horizon=2)
    # ABC: 10->11 up, 11->10.5 down; XYZ: 50->49.5 down
    expected = [1, 0, 0]
    assert labels.tolist() == expected
    assert labels.index.equals(
        _idx([("2024-01-01", "ABC"), ("2024-01-02", "ABC"), ("2024-01-02", "XYZ")])
    )


@pytest.mark.parametrize("horizon", [1, 2, 5])
def test_last_h_rows_per_ticker_have_no_label(horizon: int) -> None:
    prices = make_prices()
    labels = make_labels(prices, horizon=horizon)
    for ticker, group in prices.groupby("ticker"):
        dates = group["date"].sort_values()
        labelled = labels.xs(ticker, level="ticker").index
        assert labelled.equals(pd.DatetimeIndex(dates.iloc[:-horizon], name="date"))
    assert labels.index.is_monotonic_increasing
    assert labels.dtype == np.int8 and labels.name == "label"


def test_labels_match_the_definition_on_random_prices() -> None:
    prices = make_prices(seed=3)
    labels = make_labels(prices, horizon=3)
    wide = prices.pivot(index="date", columns="ticker", values="close")
    for ticker in wide.columns:
        close = wide[ticker].dropna()
        expected = (close.shift(-3) / close - 1 > 0).astype(np.int8).iloc[:-3]
        got = labels.xs(ticker, level="ticker")
        assert got.to_numpy().tolist() == expected.to_numpy().tolist()


def test_forward_return_enters_at_next_open_exits_at_label_close() -> None:
    fwd = outcomes(HAND, horizon=1)["forward_return"]
    # decided at close t, bought at open[t+1], sold at close[t+1]
    expected = pd.Series(
        [11.0 / 10.5 - 1, 11.0 / 12.0 - 1, 49.0 / 40.0 - 1, 10.5 / 11.0 - 1, 49.5 / 44.0 - 1],
        index=_idx(LABELED_ROWS),
        name="forward_return",
        dtype=np.float64,
    )
    pd.testing.assert_series_equal(fwd, expected, check_exact=True)


def test_forward_return_horizon_two() -> None:
    fwd = outcomes(HAND, horizon=2)["forward_return"]
    assert fwd.index.equals(
        _idx([("2024-01-01", "ABC"), ("2024-01-02", "ABC"), ("2024-01-02", "XYZ")])
    )
    assert fwd.to_numpy().tolist() == [11.0 / 10.5 - 1, 10.5 / 12.0 - 1, 49.5 / 40.0 - 1]


def test_inputs_in_any_row_order_give_the_same_result() -> None:
    shuffled = HAND.sample(frac=1.0, random_state=1).reset_index(drop=True)
    pd.testing.assert_series_equal(make_labels(shuffled), make_labels(HAND))
    pd.testing.assert_frame_equal(outcomes(shuffled), outcomes(HAND))


@pytest.mark.parametrize("horizon", [0, -1, 1.5, True])
def test_bad_horizon_is_refused(horizon: object) -> None:
    with pytest.raises(ValueError, match="horizon"):
        make_labels(HAND, horizon=horizon)  # type: ignore[arg-type]


def test_label_definition_names_the_zero_rule() -> None:
    assert "zero return" in LABEL_DEFINITION and "close[t+h]" in LABEL_DEFINITION


@pytest.mark.parametrize("horizon", [1, 2])
def test_hold_return_is_close_to_close_by_bar_count(horizon: int) -> None:
    """Against pandas' per-ticker shift, the plain reading of close[t+h] / close[t] - 1."""
    after = outcomes(HAND, horizon=horizon)
    assert list(after.columns) == ["label", "forward_return", "hold_return"]
    bars = HAND.sort_values(["ticker", "date"])
    later = bars.groupby("ticker")["close"].shift(-horizon)
    expected = (later / bars["close"] - 1).set_axis(
        pd.MultiIndex.from_frame(bars[["date", "ticker"]])
    )
    expected = expected.dropna().sort_index()
    np.testing.assert_array_equal(after["hold_return"].sort_index(), expected)
    assert after["hold_return"].sort_index().index.equals(expected.index)


def test_a_ticker_shorter_than_the_horizon_has_no_label_and_leaves_the_others_alone() -> None:
    """ABC has 4 bars, XYZ 3: at horizon 3 only ABC's first bar sees its third next bar."""
    labels = make_labels(HAND, horizon=3)
    assert labels.index.equals(_idx([("2024-01-01", "ABC")]))
    assert labels.iloc[0] == 1  # 10.0 -> 10.5
    assert make_labels(HAND, horizon=4).empty


def test_no_bars_give_no_outcomes() -> None:
    empty = HAND.iloc[:0]
    frame = outcomes(empty)
    assert frame.empty and list(frame.index.names) == ["date", "ticker"]
