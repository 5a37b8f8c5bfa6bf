"""Fast PSI: agreement with Evidently's psi_stat_test, bins, JSON round trip, input errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests import psi_stat_test
from evidently.legacy.core import ColumnType
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplatform import config
from mlplatform.monitoring.psi import (
    ReferenceBins,
    psi,
    psi_drift_share,
    psi_from_proportions,
)
from mlplatform_tests.evidently_bins import evidently_bins, sturges_edges


def _frames(seed: int = 0, n_ref: int = 3000, n_cur: int = 2500) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "normal_shift": rng.normal(size=n_ref),
            "scale_change": rng.normal(size=n_ref),
            "discrete": rng.integers(0, 5, n_ref),
            "constant": np.full(n_ref, 2.0),
            "lognormal": rng.lognormal(size=n_ref),
            "out_of_range": rng.normal(size=n_ref),
            "same": rng.normal(size=n_ref),
        }
    ).astype("float32")
    cur = pd.DataFrame(
        {
            "normal_shift": rng.normal(0.5, 1.0, n_cur),
            "scale_change": rng.normal(0.0, 2.0, n_cur),
            "discrete": rng.integers(1, 7, n_cur),  # 5 and 6 unseen in the reference
            "constant": np.full(n_cur, 3.0),
            "lognormal": rng.lognormal(0.2, 1.0, n_cur),
            "out_of_range": rng.normal(10.0, 1.0, n_cur),
            "same": rng.normal(size=n_cur),
        }
    ).astype("float32")
    return ref, cur


def _evidently_psi(ref: pd.DataFrame, cur: pd.DataFrame) -> pd.Series:
    return pd.Series(
        {
            c: float(psi_stat_test(ref[c], cur[c], ColumnType.Numerical, 0.2).drift_score)
            for c in ref.columns
        }
    )


def test_agrees_with_evidently_psi_stat_test() -> None:
    ref, cur = _frames()
    ours = psi(evidently_bins(ref, cur), cur)
    theirs = _evidently_psi(ref, cur)
    assert list(ours.index) == list(ref.columns)
    np.testing.assert_allclose(ours.to_numpy(), theirs[ours.index].to_numpy(), rtol=0, atol=1e-6)
    assert ours["normal_shift"] > 0.1 and ours["scale_change"] > 0.2 and ours["same"] < 0.05


def test_constant_column_unchanged_is_zero_in_both() -> None:
    ref = pd.DataFrame({"c": np.ones(500, dtype="float32")})
    assert psi(evidently_bins(ref, ref), ref)["c"] == 0.0
    assert _evidently_psi(ref, ref)["c"] == 0.0


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    shift=st.floats(-2, 2),
    scale=st.floats(0.2, 5),
    n_cur=st.integers(30, 400),
    discrete=st.booleans(),
)
def test_agrees_with_evidently_property(
    seed: int, shift: float, scale: float, n_cur: int, discrete: bool
) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=300)
    cur = rng.normal(shift, scale, n_cur)
    if discrete:
        ref, cur = np.round(ref * 3), np.round(cur * 3)
    ref_df = pd.DataFrame({"x": ref.astype("float32")})
    cur_df = pd.DataFrame({"x": cur.astype("float32")})
    ours = psi(evidently_bins(ref_df, cur_df), cur_df)["x"]
    assert ours == pytest.approx(_evidently_psi(ref_df, cur_df)["x"], abs=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_sturges_edges_match_numpy(dtype: str) -> None:
    rng = np.random.default_rng(3)
    for n_ref, n_cur in [(1000, 500), (131072 - 100, 100), (50, 7)]:
        ref = (rng.normal(size=n_ref) * 100).astype(dtype)
        cur = (rng.normal(size=n_cur) * 150).astype(dtype)
        expected = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        got = sturges_edges(ref, cur)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_same_distribution_small_shifted_large() -> None:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"a": rng.normal(size=20_000), "b": rng.exponential(size=20_000)})
    bins = ReferenceBins.from_frame(ref.astype("float32"))
    same = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.exponential(size=5000)})
    shifted = pd.DataFrame({"a": rng.normal(0.5, 1, 5000), "b": rng.exponential(2.0, 5000)})
    assert (psi(bins, same.astype("float32")) < 0.02).all()
    assert (psi(bins, shifted.astype("float32")) > config.DRIFT.psi_threshold).all()


def test_quantile_bins_equal_frequency_and_outer_edges() -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=10_000).astype("float32")})
    fb = ReferenceBins.from_frame(x, n_bins=10).features["a"]
    assert fb.kind == "numeric" and fb.n_bins == 10
    np.testing.assert_allclose(fb.proportions, 0.1, atol=0.002)
    # values far outside the reference range land in the outer bins, not an error
    far = pd.DataFrame({"a": np.array([-1e30, 1e30, np.inf, -np.inf], dtype="float32")})
    value = psi(ReferenceBins.from_frame(x), far)["a"]
    assert np.isfinite(value) and value > 1.0


def test_ties_never_leave_an_empty_reference_bin() -> None:
    rng = np.random.default_rng(2)
    # 60 % mass at zero (like volume spikes or clipped returns) plus a continuous tail
    x = np.where(rng.uniform(size=5000) < 0.6, 0.0, rng.exponential(size=5000)).astype("float32")
    fb = ReferenceBins.from_frame(pd.DataFrame({"v": x}), n_bins=10).features["v"]
    assert fb.kind == "numeric"
    assert (fb.counts > 0).all() and fb.n_rows == 5000
    assert len(fb.edges) == fb.n_bins - 1
    assert np.all(np.diff(fb.edges) > 0)


def test_discrete_feature_binned_by_value_with_unseen_values() -> None:
    ref = pd.DataFrame({"d": np.array([0, 1, 1, 2, 2, 2] * 100, dtype="float32")})
    bins = ReferenceBins.from_frame(ref)
    fb = bins.features["d"]
    assert fb.kind == "categorical"
    np.testing.assert_array_equal(fb.edges, [0.0, 1.0, 2.0])
    assert psi(bins, ref)["d"] == 0.0
    cur = pd.DataFrame({"d": np.array([0, 1, 2, 3, 3, 7] * 50, dtype="float32")})
    # reference shares (1/6, 2/6, 3/6, 0, 0) vs current (1/6, 1/6, 1/6, 2/6, 1/6); zeros -> 1e-4
    expected = psi_from_proportions(
        np.array([1 / 6, 2 / 6, 3 / 6, 0.0, 0.0]), np.array([1 / 6, 1 / 6, 1 / 6, 2 / 6, 1 / 6])
    )
    assert psi(bins, cur)["d"] == pytest.approx(expected, abs=1e-12)


def test_epsilon_rule_mirrors_evidently() -> None:
    # min non-zero share <= 1e-4: zeros become min / 1e6; otherwise 1e-4
    r = np.array([0.5, 0.5, 0.0])
    c = np.array([0.4, 0.4, 0.2])
    assert psi_from_proportions(r, c) == pytest.approx(
        float(np.sum((np.array([0.5, 0.5, 1e-4]) - c) * np.log(np.array([0.5, 0.5, 1e-4]) / c)))
    )
    r2 = np.array([1 - 5e-5, 5e-5, 0.0])
    fill = 5e-5 / 1e6
    rr = np.array([1 - 5e-5, 5e-5, fill])
    assert psi_from_proportions(r2, c) == pytest.approx(float(np.sum((rr - c) * np.log(rr / c))))


def test_json_round_trip_is_exact() -> None:
    ref, cur = _frames(seed=4)
    bins = ReferenceBins.from_frame(ref, n_bins=8)
    text = json.dumps(bins.to_dict(), allow_nan=False)  # strict JSON: no inf/NaN inside
    back = ReferenceBins.from_dict(json.loads(text))
    assert back.feature_names == bins.feature_names and back.n_bins == 8 and back.n_rows == 3000
    for name, fb in bins.features.items():
        assert back.features[name].kind == fb.kind
        np.testing.assert_array_equal(back.features[name].edges, fb.edges)
        np.testing.assert_array_equal(back.features[name].counts, fb.counts)
    pd.testing.assert_series_equal(psi(back, cur), psi(bins, cur))


def test_from_dict_rejects_unknown_schema() -> None:
    d = ReferenceBins.from_frame(_frames()[0]).to_dict()
    with pytest.raises(ValueError, match="schema_version"):
        ReferenceBins.from_dict({**d, "schema_version": 99})


def test_nan_in_current_raises_naming_feature() -> None:
    ref, cur = _frames()
    bins = ReferenceBins.from_frame(ref)
    cur.loc[3, "lognormal"] = np.nan
    with pytest.raises(ValueError, match="current feature lognormal: 1 NaN"):
        psi(bins, cur)


def test_missing_feature_and_empty_current_raise() -> None:
    ref, cur = _frames()
    bins = ReferenceBins.from_frame(ref)
    with pytest.raises(ValueError, match="missing: discrete"):
        psi(bins, cur.drop(columns="discrete"))
    with pytest.raises(ValueError, match="no rows"):
        psi(bins, cur.iloc[:0])


def test_extra_current_columns_ignored_and_order_kept() -> None:
    ref, cur = _frames()
    bins = ReferenceBins.from_frame(ref)
    out = psi(bins, cur.assign(extra=1.0)[[*reversed(cur.columns), "extra"]])
    assert list(out.index) == list(ref.columns)


def test_from_series_for_scores() -> None:
    rng = np.random.default_rng(5)
    bins = ReferenceBins.from_series(pd.Series(rng.uniform(size=4000), name="p_up"), n_bins=10)
    assert bins.feature_names == ["p_up"]
    assert psi(bins, pd.Series(rng.uniform(size=2000)))["p_up"] < 0.03
    assert psi(bins, pd.Series(rng.beta(5, 1, size=2000)))["p_up"] > 0.5


def test_psi_drift_share() -> None:
    values = pd.Series([0.0, 0.19, 0.2, 0.5])
    assert psi_drift_share(values, 0.2) == (0.5, 2)
    assert psi_drift_share(pd.Series([], dtype=float), 0.2) == (0.0, 0)


def test_row_major_frame_gives_same_result_as_column_built() -> None:
    rng = np.random.default_rng(9)
    block = rng.normal(size=(10_000, 5)).astype("float32")  # C-order: strided columns
    names = [f"f{i}" for i in range(5)]
    strided = pd.DataFrame(block, columns=names)
    by_column = pd.DataFrame({n: block[:, i].copy() for i, n in enumerate(names)})
    bins = ReferenceBins.from_frame(by_column)
    assert ReferenceBins.from_frame(strided).to_dict() == bins.to_dict()
    shifted = pd.DataFrame(block * 1.5 + 0.2, columns=names)
    pd.testing.assert_series_equal(
        psi(bins, shifted), psi(bins, pd.DataFrame({n: shifted[n].copy() for n in names}))
    )
