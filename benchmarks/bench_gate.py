"""The promotion gate's operating characteristics: how often it promotes a model that has a real
edge, and how often one that cannot have any.

For each seed, the whole retrain (raw_prices → features → labels → tuned_params → staging_model
→ backtest_report with its promotion checks) runs through Dagster in process on a fresh temporary
home folder, on the default-size synthetic market twice: with the default planted signal and with
`signal_strength=0` (a market nothing can predict). A market counts as promoted when every
blocking criterion passed, which is exactly when a plain Materialize of production_model
materializes it (that is tried too, and must agree; a refusal is a verdict: that run succeeds
without materializing production_model). Printed beside them: the staging model's accuracy
against the Bayes-optimal rule's (the generator knows the true P(up)) on the same rows, and the
Sharpe ratios.
Targets (issue 8): promoted on at least 90 % of markets with the signal, at most 5 % without.
Last line: one JSON object.

    .venv/bin/python -m benchmarks.bench_gate                 # 20 + 20 markets, 20 trials each
    .venv/bin/python -m benchmarks.bench_gate --seeds 5 --trials 50
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads; see training/__init__

import dagster as dg
import optuna

from mlplatform import config
from mlplatform.data.synthetic import DEFAULT_SIGNAL_STRENGTH
from mlplatform.orchestration.jobs import DATA_ASSETS, RETRAINED_ASSETS

ASSETS = (*DATA_ASSETS, *RETRAINED_ASSETS)
TARGET_POWER = 0.90
TARGET_FALSE_PROMOTION = 0.05


def one_market(seed: int, signal: float, trials: int, as_of: str) -> dict[str, Any]:
    """The whole retrain and the gate on one synthetic market, in its own home folder."""
    from mlplatform.cli import execute
    from mlplatform.definitions import build_definitions
    from mlplatform.orchestration.resources import MarketDataSource
    from mlplatform.promotion import BLOCKING_CRITERIA

    with tempfile.TemporaryDirectory(prefix="bench_gate_") as root:
        os.environ[config.HOME_ENV] = str(Path(root) / "home")
        os.environ[config.MODELS_DIR_ENV] = str(Path(root) / "models")
        market = MarketDataSource(seed=seed, signal_strength=signal, as_of=as_of)
        defs = build_definitions({"market_data": market})
        started = time.perf_counter()
        with dg.instance_for_test() as instance:
            run = execute(
                defs,
                instance,
                trigger="bench_gate",
                assets=[dg.AssetKey(key) for key in ASSETS],
                run_config={"ops": {"tuned_params": {"config": {"n_trials": trials}}}},
            )
            if not run.success:
                raise RuntimeError(f"seed {seed}: the retrain failed")
            checks = {c.check_name: c for c in run.get_asset_check_evaluations()}
            failed = sorted(name for name in BLOCKING_CRITERIA if not checks[name].passed)
            promotion = execute(
                defs, instance, trigger="bench_gate", assets=[dg.AssetKey("production_model")]
            )
        meta = next(
            e.event_specific_data.materialization.metadata  # type: ignore[union-attr]
            for e in run.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("backtest_report")
        )
    promoted = not failed
    materialized = promotion.success and any(  # a refusal is a verdict: the run succeeds
        e.asset_key == dg.AssetKey("production_model")
        for e in promotion.get_asset_materialization_events()
    )
    if materialized != promoted:
        raise RuntimeError(f"seed {seed}: checks say {promoted}, production_model disagrees")
    return {
        "seed": seed,
        "signal": signal,
        "promoted": promoted,
        "failed": failed,
        "accuracy": meta["accuracy"].value,
        "bayes_accuracy": meta["vs_bayes_optimal_accuracy"].value,
        "sharpe": meta["sharpe_after_costs"].value,
        "dsr": meta["deflated_sharpe"].value,
        "dsr_trials": int(meta["deflated_sharpe_trials"].value),  # tuning's trials: the DSR's N
        "wall_s": round(time.perf_counter() - started, 1),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "markets": len(rows),
        "promotion_rate": round(sum(r["promoted"] for r in rows) / len(rows), 3),
        "median_accuracy": round(statistics.median(r["accuracy"] for r in rows), 4),
        "median_bayes_accuracy": round(statistics.median(r["bayes_accuracy"] for r in rows), 4),
        "median_sharpe": round(statistics.median(r["sharpe"] for r in rows), 2),
        "median_dsr_trials": statistics.median(r["dsr_trials"] for r in rows),
        "median_wall_s": round(statistics.median(r["wall_s"] for r in rows), 1),
        "failed_criteria": sorted({name for r in rows for name in r["failed"]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="markets per arm")
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--as-of", default="2026-06-30", help="last synthetic bar (fixed)")
    args = parser.parse_args()
    logging.getLogger("mlplatform").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(
        f"default market: {config.SYNTHETIC.n_tickers} tickers x {config.SYNTHETIC.years} years, "
        f"evaluation {config.VALIDATION.evaluation_months} months walked forward every "
        f"{config.VALIDATION.refit_months}, {args.trials} trials, seeds {seeds.start}.."
        f"{seeds.stop - 1}"
    )
    arms: dict[str, list[dict[str, Any]]] = {"signal": [], "no_signal": []}
    for seed in seeds:
        for arm, strength in (("signal", DEFAULT_SIGNAL_STRENGTH), ("no_signal", 0.0)):
            row = one_market(seed, strength, args.trials, args.as_of)
            arms[arm].append(row)
            print(
                f"{arm:>9} seed {seed}: {'PROMOTED' if row['promoted'] else 'refused '} "
                f"accuracy {row['accuracy']:.4f} (Bayes {row['bayes_accuracy']:.4f}) "
                f"Sharpe {row['sharpe']:.2f} DSR {row['dsr']:.3f} (N {row['dsr_trials']}) "
                f"{row['wall_s']:.0f} s "
                f"{' '.join(row['failed'])}",
                flush=True,
            )
    summary = {arm: summarise(rows) for arm, rows in arms.items()}
    print()
    print(f"{'':>10} {'promoted':>9} {'target':>8} {'median acc':>11} {'Bayes':>7} {'Sharpe':>7}")
    for arm, target in (("signal", f">= {TARGET_POWER:.0%}"), ("no_signal", "<= 5%")):
        s = summary[arm]
        print(
            f"{arm:>10} {s['promotion_rate']:>9.0%} {target:>8} {s['median_accuracy']:>11.4f} "
            f"{s['median_bayes_accuracy']:>7.4f} {s['median_sharpe']:>7.2f}"
        )
    summary["targets_met"] = (
        summary["signal"]["promotion_rate"] >= TARGET_POWER
        and summary["no_signal"]["promotion_rate"] <= TARGET_FALSE_PROMOTION
    )
    summary["trials"] = args.trials
    summary["markets"] = {arm: rows for arm, rows in arms.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
