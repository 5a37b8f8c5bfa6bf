"""Live evidence benchmark: does the decay check catch a model that lost its edge, and only then?

Simulates markets day by day: one retrain (tuning, walk-forward, refit, the walk-forward
expectation) on ten years of a synthetic market, then a year of bars arriving one date at a
time: the day is scored by the model as it is served (its exported text), the outcome is learned
when the next bar arrives, and the decay check (monitoring.decay, a CUSUM) looks again. Half of
the markets keep their planted signal for the year; in the other half it vanishes on a random
day (the bars from that day on are those of the same seed's market without the signal, scaled
to continue from the last close). A retrain the check requests is counted, not run.

Also times scoring one day at 5,000 tickers and live performance on a year of those scores,
beside the feature step of the same market. The last line is one JSON object.

    .venv/bin/python -m benchmarks.bench_live                 # 20 + 20 markets, about 20 min
    .venv/bin/python -m benchmarks.bench_live --markets 2 --cost-tickers 200   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads; see training/__init__

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd

from mlplatform import config
from mlplatform.data import generate_market
from mlplatform.features import compute_features, outcomes
from mlplatform.monitoring.decay import DecayTest, Expectation
from mlplatform.monitoring.live import measure
from mlplatform.serving import ServingModel, score
from mlplatform.training import StudySpec, build_candidate, labelled_rows, walk_forward_folds
from mlplatform.training.history import fit_windows
from mlplatform.training.retrain import tune, tuned_recipe

TARGETS = {
    "false_alarm_rate": 0.05,  # at most, over the persistent markets' year
    "detection_rate_60d": 0.90,  # at least, of the vanishing markets within 60 trading days
    "score_5000_tickers_s": 5.0,
    "live_performance_s": 5.0,
}
LIVE_DAYS = 252
DETECTION_DAYS = 60


@dataclass(frozen=True)
class Market:
    seed: int
    vanishes_on: int | None  # index of the live day from which the signal is gone


def spliced_prices(seed: int, tickers: int, years: int, as_of: str, vanish: pd.Timestamp | None):
    """The market's bars; from `vanish` on, those of the same seed without the planted signal,
    rescaled per ticker to continue from the last close with the signal."""
    market = generate_market(seed=seed, n_tickers=tickers, years=years, as_of=as_of)
    if vanish is None:
        return market.prices
    flat = generate_market(
        seed=seed, n_tickers=tickers, years=years, as_of=as_of, signal_strength=0.0
    ).prices
    before = market.prices[market.prices["date"] < vanish]
    after = flat[flat["date"] >= vanish].copy()
    last_with = before.groupby("ticker", observed=True)["close"].last()
    last_without = flat[flat["date"] < vanish].groupby("ticker", observed=True)["close"].last()
    scale = (last_with / last_without).reindex(after["ticker"]).to_numpy()
    for column in ("open", "high", "low", "close"):
        after[column] = after[column].to_numpy() * scale
    return pd.concat([before, after], ignore_index=True).sort_values(["ticker", "date"])


def retrain(prices: pd.DataFrame, trials: int, root: Path, seed: int):
    """The platform's retrain on the bars up to the live year: tuned recipe, walk-forward,
    refit, and the expectation the decay test holds the served model to."""
    v = config.VALIDATION
    features = compute_features(prices)
    data = labelled_rows(features, outcomes(prices, horizon=v.horizon))
    fitted = fit_windows(
        data.dates.unique(),
        evaluation_months=v.evaluation_months,
        refit_months=v.refit_months,
        horizon=v.horizon,
        n_folds=v.n_folds,
        min_train_days=v.min_train_days,
    )
    folds = walk_forward_folds(
        data.within(fitted.windows.development).dates.unique(),
        n_folds=v.n_folds,
        horizon=v.horizon,
        embargo_days=v.embargo_days,
        min_train_days=fitted.min_train_days,
    )
    spec = StudySpec(f"live-{seed}", f"sqlite:///{root / f'{seed}.db'}", n_trials=trials, seed=seed)
    tuned = tune(data, fitted.windows, folds, spec)
    best = tuned.value()
    recipe = tuned_recipe(
        best.params,
        best.num_boost_round,
        seed=seed,
        horizon=v.horizon,
        max_training_rows=config.TRAINING.max_training_rows,
    )
    candidate = build_candidate(recipe, data, fitted.windows)
    return candidate.booster, Expectation.of_walk_forward(candidate.out_of_sample, data.y)


def live_year(market: Market, args: argparse.Namespace, root: Path) -> dict[str, object]:
    """One market: retrain at the start of the live year, then the year day by day."""
    as_of = args.as_of
    calendar = pd.bdate_range(end=as_of, periods=args.years * 252)
    live_dates = calendar[-LIVE_DAYS - 1 : -1]  # the last bar has no outcome yet
    vanish = None if market.vanishes_on is None else live_dates[market.vanishes_on]
    prices = spliced_prices(market.seed, args.tickers, args.years, as_of, vanish)
    booster, expectation = retrain(
        prices[prices["date"] < live_dates[0]], args.trials, root, market.seed
    )
    # Served as consumers of models/ serve it: from the exported native text.
    served = lgb.Booster(model_str=booster.model_to_string())
    features = compute_features(prices)
    truth = outcomes(prices, horizon=1)
    model = ServingModel("bench", "1", "1.0.0", "champion", booster, "bench")
    test = DecayTest(expectation)
    mismatches, daily, alarm = 0, [], None
    for day, date in enumerate(live_dates):
        rows = features[features.index.get_level_values("date") == date]
        logged = score(rows, [model], datetime.now(UTC))
        mismatches += int(
            (served.predict(rows[booster.feature_name()]) != logged["p_up"].to_numpy()).sum()
        )
        known = truth.reindex(rows.index)["label"].to_numpy()  # the next bar has arrived
        daily.append(float(((logged["p_up"].to_numpy() > 0.5) == (known == 1)).mean()))
        if alarm is None and test.alarm_day(daily) is not None:
            alarm = day  # the retrain it requests is counted, not run
    delay = None if alarm is None or vanish is None else alarm - market.vanishes_on
    return {
        "seed": market.seed,
        "vanishes_on": market.vanishes_on,
        "alarm_day": alarm,
        "delay": delay,
        "expected_accuracy": round(expectation.accuracy, 4),
        "daily_sd": round(expectation.daily_sd, 4),
        "threshold": round(test.threshold, 2) if test.testable else None,
        "live_accuracy": round(float(np.mean(daily)), 4),
        "parity_mismatches": mismatches,
    }


def costs(tickers: int, as_of: str) -> dict[str, float]:
    """Scoring one day and live performance over a year of scores at `tickers`, beside the
    feature step of the same market."""
    prices = generate_market(seed=11, n_tickers=tickers, years=2, as_of=as_of).prices
    started = time.perf_counter()
    features = compute_features(prices)
    features_s = time.perf_counter() - started
    data = labelled_rows(features, outcomes(prices, horizon=1))
    train = data.take(np.arange(min(len(data.X), 200_000)))
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 31},
        lgb.Dataset(train.X, label=np.asarray(train.y)),
        num_boost_round=200,
    )
    model = ServingModel("bench", "1", "1.0.0", "champion", booster, "bench")
    dates = features.index.get_level_values("date").unique().sort_values()
    last = features[features.index.get_level_values("date") == dates[-1]]
    started = time.perf_counter()
    score(last, [model], datetime.now(UTC))
    score_s = time.perf_counter() - started
    year = features[features.index.get_level_values("date").isin(dates[-LIVE_DAYS - 1 : -1])]
    logged = score(year, [model], datetime.now(UTC))
    started = time.perf_counter()
    expectation = Expectation(0.53, 0.03, 500)
    measure(logged, outcomes(prices, horizon=1), {"1": expectation}, cost_bps=5.0)
    live_s = time.perf_counter() - started
    return {
        "tickers": tickers,
        "features_s": round(features_s, 2),
        "score_s": round(score_s, 3),
        "live_performance_s": round(live_s, 2),
        "live_rows": len(logged),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=20, help="of each kind")
    parser.add_argument("--tickers", type=int, default=config.SYNTHETIC.n_tickers)
    parser.add_argument("--years", type=int, default=config.SYNTHETIC.years + 1)
    parser.add_argument("--trials", type=int, default=5, help="Optuna trials per retrain")
    parser.add_argument("--cost-tickers", type=int, default=5000)
    parser.add_argument("--as-of", default="2026-06-30")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlplatform").setLevel(logging.WARNING)
    rng = np.random.default_rng(args.seed)
    markets = [Market(args.seed + i, None) for i in range(args.markets)] + [
        Market(args.seed + 1000 + i, int(rng.integers(10, LIVE_DAYS - DETECTION_DAYS)))
        for i in range(args.markets)
    ]
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp:
        for market in markets:
            result = live_year(market, args, Path(tmp))
            results.append(result)
            kind = (
                "persists" if market.vanishes_on is None else f"vanishes day {market.vanishes_on}"
            )
            print(
                f"seed {market.seed:5d} ({kind:>17}): alarm {result['alarm_day']!s:>4}, "
                f"expected {result['expected_accuracy']}, live {result['live_accuracy']}, "
                f"sd {result['daily_sd']}, h {result['threshold']}",
                flush=True,
            )
    persistent = [r for r in results if r["vanishes_on"] is None]
    vanishing = [r for r in results if r["vanishes_on"] is not None]
    false_alarm_rate = sum(r["alarm_day"] is not None for r in persistent) / len(persistent)
    delays = [r["delay"] for r in vanishing if r["delay"] is not None and r["delay"] >= 0]
    detected = sum(d <= DETECTION_DAYS for d in delays) / len(vanishing)
    cost = costs(args.cost_tickers, args.as_of)
    summary = {
        "benchmark": "live",
        "markets_per_kind": args.markets,
        "tickers": args.tickers,
        "trials": args.trials,
        "false_alarm_rate": round(false_alarm_rate, 4),
        "detection_rate_60d": round(detected, 4),
        "median_detection_delay_days": statistics.median(delays) if delays else None,
        "parity_mismatches": sum(int(r["parity_mismatches"]) for r in results),
        "score_5000_tickers_s": cost["score_s"],
        "live_performance_s": cost["live_performance_s"],
        "features_s_same_market": cost["features_s"],
        "cost_tickers": cost["tickers"],
        "targets": TARGETS,
        "wall_s": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(
        f"false alarms {false_alarm_rate:.0%} of {len(persistent)} persistent markets; detected "
        f"{detected:.0%} of {len(vanishing)} within {DETECTION_DAYS} days (median delay "
        f"{summary['median_detection_delay_days']} days); scoring {cost['tickers']} tickers "
        f"{cost['score_s']} s, live performance {cost['live_performance_s']} s, features "
        f"{cost['features_s']} s"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
