"""The gate on whole markets: the default market's candidate is promoted without an override, a
market with no signal is refused with each failing criterion named once.

Real Dagster instance, MLflow store and Optuna study, default market size and validation (only
the trial count is small); the operating characteristics over many markets are measured by
benchmarks/bench_gate.py.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from mlplatform import config
from mlplatform.cli import refusal, run_pipeline
from mlplatform.definitions import build_definitions
from mlplatform.orchestration.resources import MarketDataSource
from mlplatform.promotion import BLOCKING_CRITERIA
from mlplatform_tests.conftest import failure_message, materialize, small_run_config

pytestmark = pytest.mark.slow

AS_OF = "2026-06-30"


def _retrain(instance: dg.DagsterInstance, signal_strength: float | None) -> dg.Definitions:
    market = (
        MarketDataSource(as_of=AS_OF)
        if signal_strength is None
        else MarketDataSource(as_of=AS_OF, signal_strength=signal_strength)
    )
    defs = build_definitions({"market_data": market})
    result = run_pipeline(defs, instance, small_run_config(n_trials=10))
    # a verdict is not a crash: the run succeeds whatever the criteria say
    assert result.success, failure_message(result)
    return defs


def _plain_promotion(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return materialize(defs, instance, "production_model")


def test_default_market_passes_every_criterion_and_promotes_plainly(platform_home: Path) -> None:
    with dg.instance_for_test() as instance:
        defs = _retrain(instance, signal_strength=None)
        checks = {
            name: instance.get_latest_asset_check_evaluation_record(
                dg.AssetCheckKey(dg.AssetKey("backtest_report"), name)
            ).evaluation
            for name in BLOCKING_CRITERIA
        }
        assert all(c.passed for c in checks.values()), {
            n: c.description for n, c in checks.items() if not c.passed
        }
        promoted = _plain_promotion(defs, instance)
        assert promoted.success, failure_message(promoted)
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri())
    production = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    assert production.tags.get("override", "false") == "false"


def test_market_without_signal_is_refused_with_each_reason_once(platform_home: Path) -> None:
    with dg.instance_for_test() as instance:
        defs = _retrain(instance, signal_strength=0.0)
        failed = [
            name
            for name in BLOCKING_CRITERIA
            if not instance.get_latest_asset_check_evaluation_record(
                dg.AssetCheckKey(dg.AssetKey("backtest_report"), name)
            ).evaluation.passed
        ]
        assert "beats_majority_class" in failed and "sharpe_after_costs_and_dsr" in failed
        refused = _plain_promotion(defs, instance)
    assert refused.success and not refused.get_asset_materialization_events()  # a verdict
    message = refusal(refused)
    assert message is not None
    for name in BLOCKING_CRITERIA:
        assert message.count(f"{name}: FAILED") == (name in failed), name
    assert f"{len(failed)} of the {len(BLOCKING_CRITERIA)} promotion checks" in message
    assert "override: true" in message and "make promote OVERRIDE=1" in message
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri())
    assert config.PRODUCTION_ALIAS not in client.get_registered_model(config.MODEL_NAME).aliases
