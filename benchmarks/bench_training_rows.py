"""Learning curve of the training-row cap (config.TRAINING.max_training_rows): out-of-sample
accuracy and log loss of the walk-forward against the rows each fit trains on, at a whole-market
size, beside the uncapped fit (the baseline) and the Bayes-optimal accuracy of the same rows.

Each cap walks the same recipe (fixed, typical tuned parameters) forward over the last
`--blocks` evaluation blocks of the default validation scheme, so every figure is out of sample;
CPU seconds are the walk-forward's (LightGBM's threads included). Last line: one JSON object.

    .venv/bin/python -m benchmarks.bench_training_rows          # 2,000 tickers x 10 years
    .venv/bin/python -m benchmarks.bench_training_rows --tickers 500 --caps 250000 500000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads; see training/__init__

from sklearn.metrics import accuracy_score, log_loss

from mlplatform import config
from mlplatform.data.synthetic import generate_market
from mlplatform.features import compute_features, feature_schema_hash, outcomes
from mlplatform.training import BASE_PARAMS, Recipe, labelled_rows, plan_windows
from mlplatform.training.recipe import walk_forward_predictions

# What the studies at 500-2,000 tickers chose, give or take (bench_pipeline's tuned_params).
PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 6,
    "min_data_in_leaf": 400,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}
ROUNDS = 80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=4, help="last evaluation blocks walked")
    parser.add_argument(
        "--caps", type=int, nargs="+", default=[250_000, 500_000, 1_000_000, 1_500_000, 3_000_000]
    )
    parser.add_argument("--seed", type=int, default=config.SYNTHETIC.seed)
    args = parser.parse_args()

    market = generate_market(
        seed=args.seed, n_tickers=args.tickers, years=args.years, as_of="2026-06-30"
    )
    features = compute_features(market.prices)
    data = labelled_rows(features, outcomes(market.prices, horizon=1))
    windows = plan_windows(
        data.dates.unique(),
        evaluation_months=config.VALIDATION.evaluation_months,
        refit_months=config.VALIDATION.refit_months,
        horizon=1,
    )
    windows = dataclasses.replace(windows, blocks=windows.blocks[-args.blocks :])
    base = Recipe(
        params={**BASE_PARAMS, **PARAMS},
        num_boost_round=ROUNDS,
        feature_schema_hash=feature_schema_hash(),
        label_definition="bench",
    )
    print(
        f"synthetic(seed={args.seed}, tickers={args.tickers}, years={args.years}): "
        f"{len(data.X):,} labelled rows; last {len(windows.blocks)} blocks "
        f"{windows.blocks[0].test.start} → {windows.blocks[-1].test.end}; {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(f"\n{'cap':>12}{'rows (refit)':>14}{'accuracy':>10}{'log loss':>10}{'cpu s':>9}")
    rows = []
    for cap in [None, *sorted(args.caps)]:
        recipe = dataclasses.replace(base, max_training_rows=cap)
        cpu = time.process_time()
        p_up = walk_forward_predictions(recipe, data, windows)
        cpu = time.process_time() - cpu
        y = data.y.reindex(p_up.index).to_numpy()
        row = {
            "cap": cap,
            "rows": min(len(data.X), cap or len(data.X)),
            "accuracy": round(float(accuracy_score(y, p_up.to_numpy() > 0.5)), 5),
            "log_loss": round(float(log_loss(y, p_up.to_numpy(), labels=[0, 1])), 5),
            "cpu_s": round(cpu, 1),
        }
        rows.append(row)
        print(
            f"{cap or 'all':>12}{row['rows']:>14,}{row['accuracy']:>10.4f}{row['log_loss']:>10.5f}"
            f"{row['cpu_s']:>9.1f}",
            flush=True,
        )
    truth = market.prob_up.reindex(p_up.index).to_numpy()
    bayes = float(accuracy_score(y, truth > 0.5))
    print(
        f"\nBayes-optimal rule on the same rows: accuracy {bayes:.4f}, log loss "
        f"{log_loss(y, truth, labels=[0, 1]):.5f}; rows predicted {len(p_up):,}"
    )
    print(
        json.dumps(
            {
                "benchmark": "training_rows",
                "tickers": args.tickers,
                "years": args.years,
                "labelled_rows": len(data.X),
                "predicted_rows": len(p_up),
                "bayes_accuracy": round(bayes, 5),
                "results": rows,
                "cpu_count": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
