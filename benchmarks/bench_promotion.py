"""Time promote and rollback against a real MLflow sqlite store and a temp models/ export.

Sets up a temporary store with a few registered versions of a realistically sized LightGBM
model, then alternates `promote` (a version that is not production) and `rollback` (back to
the previous one) `--repeat` times. Rollback is compared with the NFR-010 target (5 minutes)
and the design target (5 seconds). The last line printed is one JSON object.

    .venv/bin/python -m benchmarks.bench_promotion --repeat 20
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from mlplatform import config
from mlplatform.registry import (
    ModelPackage,
    Registry,
    get_alias_version,
    promote,
    register,
    rollback,
)

NFR_010_ROLLBACK_S = 300.0  # the NFR-010 plan: rollback within 5 minutes
DESIGN_ROLLBACK_S = 5.0  # this design: alias upsert + verified local archive copy


def small_booster(
    seed: int, n_features: int, n_trees: int, rows: int = 4000
) -> tuple[lgb.Booster, pd.DataFrame]:
    """A LightGBM model of the given size on random rows: what the registry stores and moves."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        rng.normal(size=(rows, n_features)).astype("float32"),
        columns=[f"f{i}" for i in range(n_features)],
    )
    y = (X["f0"] + rng.normal(size=len(X)) > 0).astype(int)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=n_trees), X


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {
        "median_s": float(np.median(arr)),
        "p90_s": float(np.percentile(arr, 90)),
        "min_s": float(arr.min()),
        "max_s": float(arr.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="promote+rollback rounds")
    parser.add_argument("--versions", type=int, default=4, help="registered versions")
    parser.add_argument("--trees", type=int, default=300, help="boosting rounds per model")
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-promotion-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.create_experiment("bench", artifact_location=str(root / "art"))
        export_root = root / "models"
        registry = Registry(uri, export_root)
        t0 = time.perf_counter()
        register_s: list[float] = []
        model_bytes = 0
        for i in range(args.versions):
            booster, X = small_booster(i, args.features, args.trees)
            model_bytes = len(booster.model_to_string().encode())
            start = time.perf_counter()
            register(
                registry,
                ModelPackage(
                    booster,
                    semver=f"1.{i}.0",
                    tags={"data_fingerprint": f"fp{i}"},
                    input_example=X,
                    reference={"n_bins": 10},
                    metadata={"bench": True},
                ),
                run_id=client.create_run(experiment_id).info.run_id,
            )
            register_s.append(time.perf_counter() - start)
        setup_s = time.perf_counter() - t0

        who = {"actor": "bench", "run_id": "bench"}
        promote(registry, "1", reason="initial", **who)
        versions = [str(v) for v in range(2, args.versions + 1)]
        promote_s: list[float] = []
        rollback_s: list[float] = []
        for i in range(args.repeat):
            target = versions[i % len(versions)]
            start = time.perf_counter()
            promote(registry, target, reason=f"bench round {i}", **who)
            promote_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            record = rollback(registry, reason=f"bench round {i}", **who)
            rollback_s.append(time.perf_counter() - start)
            assert record.to_version == "1"
        production = get_alias_version(uri, config.MODEL_NAME, config.PRODUCTION_ALIAS)
        assert production is not None and str(production.version) == "1"

    promo, rb = _stats(promote_s), _stats(rollback_s)
    print(
        f"setup: {args.versions} versions registered in {setup_s:.1f} s "
        f"(register median {statistics.median(register_s):.2f} s); model.txt "
        f"{model_bytes / 1e6:.2f} MB ({args.trees} trees, {args.features} features)"
    )
    print(f"{'operation':<10} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}   (n={args.repeat})")
    for label, s in (("promote", promo), ("rollback", rb)):
        print(
            f"{label:<10} {s['median_s']:>8.3f}s {s['p90_s']:>8.3f}s "
            f"{s['min_s']:>8.3f}s {s['max_s']:>8.3f}s"
        )
    print(
        f"rollback p90 vs NFR-010 target {NFR_010_ROLLBACK_S:.0f} s: "
        f"{NFR_010_ROLLBACK_S / rb['p90_s']:.0f}x faster; vs design target "
        f"{DESIGN_ROLLBACK_S:.0f} s: {'met' if rb['p90_s'] <= DESIGN_ROLLBACK_S else 'MISSED'}"
    )
    result = {
        "benchmark": "promotion",
        "repeat": args.repeat,
        "versions": args.versions,
        "trees": args.trees,
        "features": args.features,
        "model_txt_bytes": model_bytes,
        "register_median_s": statistics.median(register_s),
        "promote": promo,
        "rollback": rb,
        "nfr_010_rollback_target_s": NFR_010_ROLLBACK_S,
        "design_rollback_target_s": DESIGN_ROLLBACK_S,
        "rollback_meets_nfr_010": rb["p90_s"] <= NFR_010_ROLLBACK_S,
        "rollback_meets_design": rb["p90_s"] <= DESIGN_ROLLBACK_S,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
