"""compute_features: shape, dtypes, schema hash, hand-checked values, an independent reference,
and a property test that no NaN/inf survives for random valid price paths."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplatform import parallel
from mlplatform.features import (
    FEATURE_COLUMNS,
    FEATURE_SPEC,
    FEATURE_VERSION,
    compute,
    compute_features,
    feature_schema_hash,
    make_labels,
)
from mlplatform_tests.feature_reference import loop_features
from mlplatform_tests.test_features_support import make_prices

PRICES = make_prices(seed=1)
RANK_COLUMNS = [c for c in FEATURE_COLUMNS if c.startswith("xs_rank_")]


def test_frame_contract() -> None:
    features = compute_features(PRICES)
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert (features.dtypes == np.float32).all()
    assert features.index.names == ["date", "ticker"]
    assert features.index.is_monotonic_increasing and features.index.is_unique
    assert features.index.get_level_values("date").dtype == "datetime64[ns]"
    assert np.isfinite(features.to_numpy()).all()
    # one row per input bar after each ticker's 63-bar warm-up
    assert len(features) == sum(max(n - 63, 0) for n in PRICES.groupby("ticker").size())


def test_deterministic_and_independent_of_input_row_order() -> None:
    a = compute_features(PRICES)
    b = compute_features(PRICES.sample(frac=1.0, random_state=0).reset_index(drop=True))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, compute_features(PRICES.copy()), check_exact=True)


def test_feature_columns_follow_the_spec() -> None:
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    for name in ("ret_1", "ret_21", "vol_63", "rsi_14", "macd_hist", "bb_pctb_20", "atr_14"):
        assert name in FEATURE_COLUMNS
    assert all(FEATURE_SPEC[c]["of"] in FEATURE_COLUMNS for c in RANK_COLUMNS)


def test_schema_hash_tracks_parameters_order_and_version() -> None:
    base = feature_schema_hash()
    assert base == feature_schema_hash() and len(base) == 64
    changed = copy.deepcopy(FEATURE_SPEC)
    changed["rsi_14"]["window"] = 15
    assert feature_schema_hash(changed) != base
    reordered = dict(reversed(list(FEATURE_SPEC.items())))
    assert feature_schema_hash(reordered) != base
    assert feature_schema_hash(version=FEATURE_VERSION + "x") != base
    fewer = {k: v for k, v in FEATURE_SPEC.items() if k != "clv"}
    assert feature_schema_hash(fewer) != base


def test_a_spec_parameter_drives_the_numbers() -> None:
    changed = copy.deepcopy(FEATURE_SPEC)
    changed["rsi_14"]["window"] = 7
    a = compute_features(PRICES)
    b = compute_features(PRICES, spec=changed)
    assert not np.array_equal(a["rsi_14"], b["rsi_14"])
    pd.testing.assert_series_equal(a["ret_5"], b["ret_5"])


def test_unknown_or_unimplemented_spec_is_refused() -> None:
    bad = copy.deepcopy(FEATURE_SPEC)
    bad["rsi_14"]["smoothing"] = "cutler"
    with pytest.raises(ValueError, match="rsi_14"):
        compute_features(PRICES, spec=bad)
    with pytest.raises(ValueError, match="unknown kind"):
        compute_features(PRICES, spec={"x": {"kind": "magic"}})


def test_bad_frames_are_refused_with_the_project_error() -> None:
    from mlplatform.data import DataValidationError

    with pytest.raises(DataValidationError, match="volume") as missing:
        compute_features(PRICES.drop(columns="volume"))
    assert missing.value.column == "volume"
    with pytest.raises(DataValidationError, match="duplicate") as dup:
        compute_features(pd.concat([PRICES, PRICES.iloc[[5]]], ignore_index=True))
    assert (dup.value.ticker, dup.value.date) == (
        PRICES["ticker"][5],
        str(PRICES["date"][5].date()),
    )


def test_empty_and_too_short_histories_give_empty_frames_with_the_schema() -> None:
    for prices in (PRICES.iloc[:0], make_prices({"NEW": (0, 40)}, gaps={})):
        features = compute_features(prices)
        assert features.empty and list(features.columns) == list(FEATURE_COLUMNS)
        assert (features.dtypes == np.float32).all()
        assert features.index.names == ["date", "ticker"]


def test_non_finite_bars_are_refused() -> None:
    broken = PRICES.copy()
    broken.loc[7, "close"] = np.nan
    with pytest.raises(ValueError, match="column close") as err:
        compute_features(broken)
    assert err.value.ticker == broken["ticker"][7]  # type: ignore[attr-defined]


def test_single_ticker_ranks_are_constant_half() -> None:
    one = make_prices({"ONE": (0, 120)}, gaps={})
    features = compute_features(one)
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert len(features) == 120 - 63
    assert (features[RANK_COLUMNS] == 0.5).all().all()


def test_ranks_are_percentiles_among_tickers_of_the_date() -> None:
    features = compute_features(PRICES)
    per_date = features.groupby(level="date")
    n = per_date["ret_1"].transform("size").to_numpy()
    expected = (per_date["ret_1"].rank(method="average").to_numpy() - 0.5) / n
    np.testing.assert_allclose(features["xs_rank_ret_1"], expected, rtol=1e-6)
    assert features[RANK_COLUMNS].min().min() > 0 and features[RANK_COLUMNS].max().max() < 1


def test_hand_checked_values() -> None:
    dates = pd.bdate_range("2024-01-01", periods=80)  # starts on a Monday
    close = 100.0 * 1.01 ** np.arange(80)  # strictly rising, constant 1 % steps
    prices = pd.DataFrame(
        {
            "date": dates,
            "ticker": "UP",
            "open": close / 1.005,
            "high": close * 1.02,
            "low": close / 1.02 / 1.005,
            "close": close,
            "volume": 5000.0,
        }
    )
    f = compute_features(prices)
    assert f.index.get_level_values("date")[0] == dates[63]
    np.testing.assert_allclose(f["ret_1"], np.log(1.01), rtol=1e-6)
    np.testing.assert_allclose(f["ret_21"], 21 * np.log(1.01), rtol=1e-6)
    np.testing.assert_allclose(f["vol_21"], 0.0, atol=1e-7)
    np.testing.assert_allclose(f["rsi_14"], 100.0)  # no losses at all
    np.testing.assert_allclose(f["gap_overnight"], np.log(1.01 / 1.005), rtol=1e-6)
    np.testing.assert_allclose(f["range_hl"], 1.02 - 1 / 1.02 / 1.005, rtol=1e-6)
    clv = (1 - 1 / 1.02 / 1.005 - (1.02 - 1)) / (1.02 - 1 / 1.02 / 1.005)
    np.testing.assert_allclose(f["clv"], clv, rtol=1e-5)
    np.testing.assert_allclose(f["volume_z_21"], 0.0)  # constant volume: guarded, not NaN
    assert (f["macd_line"] > 0).all()
    assert f["day_of_week"].tolist() == [d.dayofweek for d in dates[63:]]


def test_flat_prices_give_neutral_values_not_nan() -> None:
    dates = pd.bdate_range("2024-01-01", periods=70)
    prices = pd.DataFrame(
        {"date": dates, "ticker": "FLAT", "open": 5.0, "high": 5.0, "low": 5.0, "close": 5.0}
    ).assign(volume=0.0)
    f = compute_features(prices)
    assert len(f) == 70 - 63
    row = f.iloc[-1]
    assert row["rsi_14"] == 50.0 and row["bb_pctb_20"] == 0.5 and row["clv"] == 0.0
    assert row["volume_z_21"] == 0.0 and row["range_hl"] == 0.0 and row["vol_63"] == 0.0
    assert row["macd_line"] == 0.0 and row["atr_14"] == 0.0


def test_agrees_with_the_independent_per_ticker_implementation() -> None:
    """A plain pandas loop per ticker is a second, independent implementation."""
    reference = loop_features(PRICES)
    features = compute_features(PRICES)
    assert features.index.equals(reference.index)
    np.testing.assert_allclose(features.to_numpy(), reference.to_numpy(), rtol=1e-5, atol=1e-6)


def test_blocks_of_a_few_tickers_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks are capped in size (their temporaries are reused): any cap, the same features."""
    whole = compute_features(PRICES, drop_warmup=False)
    monkeypatch.setattr(compute, "_TICKERS_PER_BLOCK", 1)
    pd.testing.assert_frame_equal(
        compute_features(PRICES, drop_warmup=False), whole, check_exact=True
    )
    pieces = parallel.blocks(1000, max_size=256)
    assert len(pieces) == 4 and all(p.stop - p.start <= 256 for p in pieces)
    assert [i for p in pieces for i in range(p.start, p.stop)] == list(range(1000))


@st.composite
def price_paths(draw: st.DrawFn) -> pd.DataFrame:
    """Valid OHLCV paths with awkward parts: flat runs, zero volume, tiny and huge levels."""
    seed = draw(st.integers(0, 2**32 - 1))
    n_tickers = draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_tickers):
        n = draw(st.integers(64, 110))
        start = draw(st.integers(0, 20))
        level = draw(st.sampled_from([1e-3, 1.0, 100.0, 1e5]))
        sigma = draw(st.sampled_from([0.0, 1e-6, 0.02, 0.3]))
        steps = rng.normal(0, sigma, n) * (rng.uniform(size=n) < draw(st.floats(0, 1)))
        close = level * np.exp(np.cumsum(steps))
        open_ = close * np.exp(rng.normal(0, sigma / 3, n))
        wick = draw(st.sampled_from([0.0, 0.01]))
        high = np.maximum(open_, close) * (1 + wick * rng.uniform(size=n))
        low = np.minimum(open_, close) * (1 - wick * rng.uniform(size=n))
        volume = draw(st.sampled_from([0.0, 1.0, 1e6])) * rng.integers(0, 3, n).astype(float)
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.bdate_range("2022-01-03", periods=start + n)[start:],
                    "ticker": f"T{i}",
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prices=price_paths())
def test_no_nan_or_inf_for_random_valid_paths(prices: pd.DataFrame) -> None:
    features = compute_features(prices)
    values = features.to_numpy()
    assert values.dtype == np.float32
    assert np.isfinite(values).all()
    expected_rows = sum(max(n - 63, 0) for n in prices.groupby("ticker").size())
    assert len(features) == expected_rows  # nothing dropped beyond the warm-up
    assert ((features[RANK_COLUMNS] > 0) & (features[RANK_COLUMNS] < 1)).all().all()


def test_rank_kernel_matches_pandas_with_ties_and_gaps() -> None:
    from mlplatform.features.indicators import cross_sectional_pct_rank

    rng = np.random.default_rng(5)
    panel = rng.integers(0, 4, size=(50, 7)).astype(np.float64)  # many ties
    panel[rng.uniform(size=panel.shape) < 0.3] = np.nan
    panel[0] = np.nan  # a date nobody traded
    panel[1, 1:] = np.nan  # a lone ticker
    frame = pd.DataFrame(panel)
    expected = (frame.rank(axis=1, method="average") - 0.5).div(frame.count(axis=1), axis=0)
    got = cross_sectional_pct_rank(panel)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), expected.isna().to_numpy())
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-6)
    assert got[1, 0] == 0.5


def test_with_the_synthetic_market_a_later_as_of_only_appends() -> None:
    """End to end with mlplatform.data: more history later never rewrites earlier features."""
    data = pytest.importorskip("mlplatform.data")
    # both histories start at the generator's epoch, so the later one only appends bars
    early = data.generate_market(seed=3, n_tickers=4, years=2, as_of="2000-08-31").prices
    late = data.generate_market(seed=3, n_tickers=4, years=2, as_of="2000-10-31").prices
    assert early["date"].min() == late["date"].min()
    a, b = compute_features(early), compute_features(late)
    cut = pd.Timestamp("2000-08-31")
    b_early = b[b.index.get_level_values("date") <= cut]
    pd.testing.assert_frame_equal(a, b_early, check_exact=True)
    unlabelled = b.index.difference(make_labels(late).index)
    assert (unlabelled.get_level_values("date") == late["date"].max()).all()


def test_panel_kernels_match_per_column_pandas_and_stay_inside_their_column() -> None:
    """One pandas call over all tickers must equal a separate call per ticker, bit for bit."""
    from mlplatform.features.indicators import ewm_mean, rolling_mean, rolling_std

    rng = np.random.default_rng(11)
    panel = np.asfortranarray(rng.normal(size=(80, 4)))
    panel[70:, 1] = np.nan  # a shorter ticker, NaN-padded
    for window in (1, 5, 21):
        got_std = rolling_std(panel, window, 1)
        got_mean = rolling_mean(panel, window)
        for j in range(panel.shape[1]):
            column = pd.Series(panel[:, j])
            np.testing.assert_array_equal(got_std[:, j], column.rolling(window).std().to_numpy())
            np.testing.assert_array_equal(got_mean[:, j], column.rolling(window).mean().to_numpy())
    changed = panel.copy(order="F")
    changed[:, 0] *= 1e6  # a wild neighbour must not move column 1 by one bit
    np.testing.assert_array_equal(
        rolling_std(changed, 21, 1)[:, 1], rolling_std(panel, 21, 1)[:, 1]
    )
    ewm = ewm_mean(panel, alpha=0.1, min_periods=3)
    expected = pd.DataFrame(panel).ewm(alpha=0.1, adjust=False, min_periods=3).mean().to_numpy()
    np.testing.assert_allclose(ewm[:70], expected[:70], rtol=1e-12)
