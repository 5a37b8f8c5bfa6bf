"""Every benchmark runs the way the docs show (`python -m benchmarks.<name>` from the repository
root) at its smallest settings and ends with its JSON line: a rename can never silently break
one. The figures themselves are the benchmarks' business, not these tests'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform import config

BENCHMARKS = config.PROJECT_ROOT / "benchmarks"

# name -> (smallest arguments, a key its JSON line must carry)
SMOKE = {
    "bench_drift": (
        ["--rows", "3000", "--features", "4", "--big-rows", "6000", "--repeats", "1"],
        "fast_psi_stored_bins_s",
    ),
    "bench_promotion": (
        ["--repeat", "2", "--versions", "2", "--trees", "5", "--features", "5"],
        "rollback",
    ),
    "bench_training_rows": (
        ["--tickers", "10", "--years", "4", "--blocks", "1", "--caps", "2000"],
        "results",
    ),
    "bench_tuning": (
        ["--seeds", "42", "--tickers", "8", "--years", "6", "--wide-tickers", "0"],
        "cpu_ratio_vs_50_trials",
    ),
    "bench_prior": (
        ["--markets", "2", "--trials", "4", "--years", "6", "--max-tickers", "8"],
        "ranking",
    ),
    "bench_pipeline": (
        ["--tickers", "8", "--years", "5", "--trials", "3", "--stop-rule", "both"],
        "sizes",
    ),
    "bench_retention": (
        [
            *("--retrains", "5", "--trials", "2", "--trees", "5", "--features", "5"),
            *("--report-kb", "1", "--promote-every", "2", "--keep-last", "1", "--keep-days", "7"),
        ],
        "size_ratio",
    ),
    "bench_gate": (["--seeds", "1", "--trials", "2"], "targets_met"),
    "bench_slices": (["--tickers", "30", "--years", "4", "--repeats", "1"], "slicing_s"),
    "bench_live": (
        [
            "--markets",
            "1",
            "--tickers",
            "8",
            "--years",
            "5",
            "--cost-tickers",
            "100",
            "--trials",
            "2",
        ],
        "false_alarm_rate",
    ),
}
# Needs the machine's Postgres (CI=true always has it), as test_scaleout.py does.
SCALEOUT = (
    [
        *("--tickers", "8", "--years", "6", "--trials", "4", "--workers", "1", "2"),
        *("--retrain-tickers", "6", "--retrain-years", "5", "--retrain-trials", "2"),
    ],
    "duplicates_total",
)


def test_every_benchmark_has_a_smoke_run() -> None:
    scripts = {path.stem for path in BENCHMARKS.glob("bench_*.py")}
    assert scripts == {*SMOKE, "bench_scaleout"}


def _run(name: str, args: list[str], tmp_path: Path) -> dict:
    env = {**os.environ, config.HOME_ENV: str(tmp_path / "home")}
    env[config.MODELS_DIR_ENV] = str(tmp_path / "models")
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=config.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_as_documented(name: str, tmp_path: Path) -> None:
    args, key = SMOKE[name]
    assert key in _run(name, args, tmp_path)


@pytest.mark.scaleout
def test_the_scaleout_benchmark_runs_as_documented(tmp_path: Path) -> None:
    from mlplatform_tests.test_scaleout import PG_SERVER, _require

    _require("PostgreSQL", PG_SERVER)
    args, key = SCALEOUT
    assert key in _run("bench_scaleout", args, tmp_path)
