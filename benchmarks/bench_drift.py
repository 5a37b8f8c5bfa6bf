"""Fast PSI (mlplatform.monitoring.psi) beside Evidently 0.7's PSI on the same data.

Baselines on the same --rows x --features frames (reference and a partly shifted current):
  1. Evidently's full Report([DataDriftPreset(method="psi")]) (what drift_report runs, unsampled),
  2. Evidently's per-column PSI stat test function (psi_stat_test) in a loop over the columns.
The fast PSI is timed (median of --repeats) on Evidently's own bins (built from the pair, so the
PSI values must agree; max abs difference printed) and on stored quantile bins (the sensor's
path), then at --big-rows x --features on stored bins. Last line: one JSON object.

    .venv/bin/python -m benchmarks.bench_drift --rows 200000 --features 40 --big-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from evidently import Report
from evidently.legacy.calculations.stattests import psi_stat_test
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from mlplatform.monitoring.drift import _parse_snapshot
from mlplatform.monitoring.psi import ReferenceBins, psi
from mlplatform_tests.evidently_bins import evidently_bins


def make_frames(rows: int, features: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current features like the platform's: float32, mostly continuous (normal,
    heavy-tailed, skewed), a few discrete; a third of the current columns shifted or rescaled."""
    rng = np.random.default_rng(seed)
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for i in range(features):
        kind = i % 8
        drift = i % 3 == 0
        if kind == 7:  # discrete (e.g. a weekday or a sign count)
            ref[f"f{i:02d}"] = rng.integers(0, 5, rows)
            cur[f"f{i:02d}"] = rng.integers(0, 6 if drift else 5, rows)
        elif kind in (1, 4):  # heavy tails, like returns
            ref[f"f{i:02d}"] = rng.standard_t(3, rows)
            cur[f"f{i:02d}"] = rng.standard_t(3, rows) * (1.6 if drift else 1.0)
        elif kind == 2:  # skewed, like volume ratios
            ref[f"f{i:02d}"] = rng.lognormal(0.0, 1.0, rows)
            cur[f"f{i:02d}"] = rng.lognormal(0.3 if drift else 0.0, 1.0, rows)
        else:
            ref[f"f{i:02d}"] = rng.standard_normal(rows)
            cur[f"f{i:02d}"] = rng.standard_normal(rows) + (0.5 if drift else 0.0)
    as32 = {k: v.astype(np.float32) for k, v in ref.items()}
    return pd.DataFrame(as32), pd.DataFrame({k: v.astype(np.float32) for k, v in cur.items()})


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t, out = timed(fn)
        times.append(t)
    return statistics.median(times), out


def evidently_report_psi(ref: pd.DataFrame, cur: pd.DataFrame) -> pd.Series:
    report = Report([DataDriftPreset(method="psi", threshold=0.2, drift_share=0.3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(cur, ref)
    per_feature, *_ = _parse_snapshot(snapshot.dict(), list(ref.columns), 0.2, 0.3)
    return per_feature.set_index("feature")["psi"]


def evidently_stattest_psi(ref: pd.DataFrame, cur: pd.DataFrame) -> pd.Series:
    return pd.Series(
        {
            c: float(psi_stat_test(ref[c], cur[c], ColumnType.Numerical, 0.2).drift_score)
            for c in ref.columns
        }
    )


def bench_same_data(args: argparse.Namespace) -> dict[str, Any]:
    """Fast PSI beside both Evidently baselines on one (reference, current) pair."""
    ref, cur = make_frames(args.rows, args.features, args.seed)
    evidently_report_psi(ref.iloc[:500], cur.iloc[:500])  # warm-up: lazy imports, registries
    evidently_stattest_psi(ref.iloc[:500], cur.iloc[:500])
    print(f"data: {args.rows:,} rows x {args.features} features (float32), reference and current")

    fast_ev_s, fast_ev = median_time(lambda: psi(evidently_bins(ref, cur), cur), args.repeats)
    stored = ReferenceBins.from_frame(ref)
    fast_q_s, fast_q = median_time(lambda: psi(stored, cur), args.repeats)
    stat_s, stat = timed(lambda: evidently_stattest_psi(ref, cur))
    diff_stat = float((stat[fast_ev.index] - fast_ev).abs().max())
    result: dict[str, Any] = {
        "rows": args.rows,
        "features": args.features,
        "fast_psi_evidently_bins_s": round(fast_ev_s, 4),
        "fast_psi_stored_bins_s": round(fast_q_s, 4),
        "evidently_stattest_s": round(stat_s, 3),
        "speedup_vs_stattest": round(stat_s / fast_ev_s, 1),
        "speedup_vs_stattest_stored_bins": round(stat_s / fast_q_s, 1),
        "max_abs_diff_vs_stattest": diff_stat,
    }
    print(f"fast PSI, Evidently's bins (bins + PSI), median of {args.repeats}: {fast_ev_s:.3f} s")
    print(f"fast PSI, stored quantile bins (sensor), median of {args.repeats}: {fast_q_s:.3f} s")
    print(
        f"Evidently psi_stat_test per column:        {stat_s:.2f} s  "
        f"-> {stat_s / fast_ev_s:.1f}x slower ({stat_s / fast_q_s:.1f}x vs stored bins), "
        f"max |diff| {diff_stat:.2e}"
    )
    if not args.skip_report:
        rep_s, rep = timed(lambda: evidently_report_psi(ref, cur))
        diff_rep = float((rep[fast_ev.index] - fast_ev).abs().max())
        result.update(
            evidently_report_s=round(rep_s, 2),
            speedup_vs_report=round(rep_s / fast_ev_s, 1),
            speedup_vs_report_stored_bins=round(rep_s / fast_q_s, 1),
            max_abs_diff_vs_report=diff_rep,
        )
        print(
            f"Evidently Report(DataDriftPreset psi):     {rep_s:.2f} s  "
            f"-> {rep_s / fast_ev_s:.1f}x slower, max |diff| {diff_rep:.2e}"
        )
    drifted_q = int((fast_q >= 0.2).sum())
    drifted_ev = int((fast_ev >= 0.2).sum())
    print(
        f"features with PSI >= 0.2: stored quantile bins {drifted_q}, Evidently bins {drifted_ev}"
    )
    result.update(drifted_quantile_bins=drifted_q, drifted_evidently_bins=drifted_ev)
    return result


def bench_big(args: argparse.Namespace) -> dict[str, Any]:
    """The sensor's path at scale: stored bins built once, PSI of a big current frame."""
    big_ref, big_cur = make_frames(args.big_rows, args.features, args.seed + 1)
    build_s, big_bins = timed(lambda: ReferenceBins.from_frame(big_ref))
    big_s, _ = median_time(lambda: psi(big_bins, big_cur), args.repeats)
    big_ev_s, _ = median_time(lambda: psi(evidently_bins(big_ref, big_cur), big_cur), 3)
    print(
        f"big: {args.big_rows:,} x {args.features}: fast PSI on stored bins {big_s:.3f} s "
        f"(median of {args.repeats}); Evidently-bins PSI incl. bins {big_ev_s:.3f} s; "
        f"building the stored bins {build_s:.3f} s"
    )
    return dict(
        big_rows=args.big_rows,
        big_fast_psi_stored_bins_s=round(big_s, 4),
        big_fast_psi_evidently_bins_s=round(big_ev_s, 4),
        big_build_reference_bins_s=round(build_s, 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-report", action="store_true", help="skip the slow full Report")
    args = parser.parse_args()

    result = bench_same_data(args)
    result.update(bench_big(args))
    result.update(
        targets={
            "report_20x": result.get("speedup_vs_report", 0) >= 20,
            "stattest_20x_evidently_bins": result["speedup_vs_stattest"] >= 20,
            "stattest_20x_stored_bins": result["speedup_vs_stattest_stored_bins"] >= 20,
            "big_under_1s": result["big_fast_psi_stored_bins_s"] < 1.0,
            "agree_1e-6": max(
                result["max_abs_diff_vs_stattest"], result.get("max_abs_diff_vs_report", 0.0)
            )
            < 1e-6,
        },
        cpus=os.cpu_count(),
        load_avg_1m=round(os.getloadavg()[0], 2),
        python=platform.python_version(),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
