"""The whole code location on a small market: real Dagster instance, MLflow store, Optuna study."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlplatform import config
from mlplatform.cli import execute, refusal, run_pipeline
from mlplatform.definitions import build_definitions
from mlplatform.features import outcomes
from mlplatform.monitoring.model_drift import DriftReport
from mlplatform.orchestration.metadata import rounded
from mlplatform.orchestration.resources import ValidationScheme
from mlplatform.promotion import BLOCKING_CRITERIA, WARNING_CRITERIA
from mlplatform.promotion.evidence import BacktestReport
from mlplatform.registry import verify_export
from mlplatform.training.retrain import StagingModel, TunedParams
from mlplatform_tests.conftest import (
    RETRAIN_ASSETS,
    SMALL_VALIDATION,
    deployed_stores,
    failure_message,
    lenient_policy,
    materialize,
    small_overrides,
    small_run_config,
)

LENIENT = lenient_policy()


def materialize_production(
    defs: dg.Definitions, instance: dg.DagsterInstance, **promotion: object
) -> dg.ExecuteInProcessResult:
    return materialize(
        defs,
        instance,
        "production_model",
        run_config={"ops": {"production_model": {"config": promotion}}},
    )


def refused_verdict(result: dg.ExecuteInProcessResult) -> str:
    """A refusal is a verdict, not a crash: the run succeeds, production_model is not
    materialized (nor marked failed), and the verdict is recorded and tagged on the run."""
    assert result.success, failure_message(result)
    assert not result.get_asset_materialization_events()
    run = result.dagster_run
    verdict = refusal(result)
    assert verdict is not None and "Traceback" not in verdict and "dagster." not in verdict
    assert result.all_events and run.run_id
    return verdict


def mlflow_statuses(tracking_uri: str) -> list[str]:
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r.info.status for r in client.search_runs(experiments, max_results=1000)]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(config.HOME_ENV, str(root / "home"))
        mp.setenv(config.MODELS_DIR_ENV, str(root / "models"))
        mp.delenv(config.DATA_PATH_ENV, raising=False)
        with dg.instance_for_test() as instance:
            defs = build_definitions(small_overrides(policy=LENIENT))
            result = run_pipeline(defs, instance, small_run_config())
            yield SimpleNamespace(
                defs=defs, instance=instance, result=result, models=root / "models", mp=mp
            )


def test_every_asset_but_production_materializes(pipeline: SimpleNamespace) -> None:
    assert pipeline.result.success, failure_message(pipeline.result)
    keys = {
        e.asset_key.to_user_string() for e in pipeline.result.get_asset_materialization_events()
    }
    assert keys == {*RETRAIN_ASSETS, "drift_report"}


def test_checks_evaluated_with_numbers(pipeline: SimpleNamespace) -> None:
    evaluations = {c.check_name: c for c in pipeline.result.get_asset_check_evaluations()}
    for name in (*BLOCKING_CRITERIA, *WARNING_CRITERIA, "features_finite", "raw_prices_no_gaps"):
        assert name in evaluations, name
    assert all(evaluations[name].passed for name in BLOCKING_CRITERIA)
    assert "staging_version" in evaluations["beats_majority_class"].metadata


def test_staging_registered_and_exported(pipeline: SimpleNamespace) -> None:
    stores = deployed_stores()
    client = MlflowClient(tracking_uri=stores.tracking_uri)
    version = client.get_model_version_by_alias(config.MODEL_NAME, config.STAGING_ALIAS)
    assert version.tags["semver"] == "1.0.0"
    for tag in (
        "feature_schema_hash",
        "data_fingerprint",
        "training_window",
        "params",
        "dagster_run_id",
    ):
        assert version.tags[tag]
    metadata = verify_export(Path(stores.models_dir) / "staging")
    assert str(metadata["model_version"]) == str(version.version)


def test_labels_are_stored_once_for_the_schemes_horizon(pipeline: SimpleNamespace) -> None:
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("labels"))
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    horizon = ValidationScheme(**SMALL_VALIDATION).horizon
    assert metadata["horizon"] == horizon and f"[horizon={horizon}]" in metadata["label"]
    labels, features, prices = (
        pipeline.defs.load_asset_value(key, instance=pipeline.instance)
        for key in ("labels", "features", "raw_prices")
    )
    assert labels.attrs["horizon"] == horizon
    truth = outcomes(prices, horizon)
    # every feature row whose bar `horizon` later exists, and nothing else
    assert labels.index.equals(features.index[features.index.isin(truth.index)])
    assert len(labels) == metadata["dagster/row_count"]
    pd.testing.assert_frame_equal(labels, truth.loc[labels.index], check_like=True)
    assert 0.4 < metadata["up_share"] < 0.65


def test_asset_values_between_steps_are_typed(pipeline: SimpleNamespace) -> None:
    tuned, staging, report, drift = (
        pipeline.defs.load_asset_value(key, instance=pipeline.instance)
        for key in ("tuned_params", "staging_model", "backtest_report", "drift_report")
    )
    assert isinstance(tuned, TunedParams) and isinstance(staging, StagingModel)
    assert isinstance(report, BacktestReport) and isinstance(drift, DriftReport)
    assert staging.windows == tuned.windows == report.windows
    assert report.staging_version == staging.version == drift.model_version
    assert staging.recipe.num_boost_round == tuned.num_boost_round


def test_no_mlflow_run_left_running(pipeline: SimpleNamespace) -> None:
    statuses = mlflow_statuses(deployed_stores().tracking_uri)
    assert statuses and "RUNNING" not in statuses


def test_backtest_metadata_is_readable(pipeline: SimpleNamespace) -> None:
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("backtest_report"))
    metadata = event.asset_materialization.metadata
    assert "| " in metadata["comparison"].value and "always_up" in metadata["comparison"].value
    assert 0.4 < metadata["accuracy"].value < 0.65  # honest daily-bar territory
    assert 0.5 < metadata["vs_bayes_optimal_accuracy"].value < 0.65
    # Only what changes between retrains is a number (a plot); constants are text.
    numbers = {k for k, v in metadata.items() if isinstance(v.value, int | float)}
    headline = {"accuracy", "auc", "log_loss", "brier", "sharpe_after_costs", "deflated_sharpe"}
    assert numbers <= headline | {k for k in metadata if k.startswith("vs_")}
    assert all(v.value == rounded(v.value) for k, v in metadata.items() if k in numbers)
    assert Path(metadata["report_file"].value).exists()
    # where the edge lives: every kind of slice; this small window's are all too small to judge
    slices = metadata["where_the_edge_lives"]
    assert isinstance(slices, dg.TableMetadataValue)
    assert {"kind", "slice", "rows", "edge", "note"} <= {c.name for c in slices.schema.columns}
    kinds = {r.data["kind"] for r in slices.records}
    assert kinds == {"all", "year", "volatility regime", "ticker group"}
    assert all(r.data["note"].startswith("too few ") for r in slices.records)
    # the link a person clicks opens the HTML report among the MLflow run's artifacts
    assert metadata["report"].value.startswith(config.mlflow_ui_url() + "/#/experiments/")
    assert metadata["report"].value.endswith(
        "/artifacts/backtest/" + Path(metadata["report_file"].value).name
    )


def test_promotion_refused_when_a_check_failed(pipeline: SimpleNamespace) -> None:
    strict = build_definitions(small_overrides(policy=lenient_policy(min_class_share=0.5)))
    rerun = materialize(strict, pipeline.instance, "backtest_report")
    assert rerun.success  # a failed criterion is a verdict on the candidate, not a failed run
    assert not {c.check_name: c.passed for c in rerun.get_asset_check_evaluations()}[
        "predictions_not_degenerate"
    ]
    refused = materialize_production(pipeline.defs, pipeline.instance)
    message = refused_verdict(refused)
    assert message.count("predictions_not_degenerate: FAILED") == 1
    # judged under the stricter deployment's policy: no check vouches under this one
    assert message.count("min_class_share 0.5 (deployed 0)") == len(BLOCKING_CRITERIA)
    assert "override: true" in message and "make promote OVERRIDE=1" in message
    # the count is the Checks tab's: 5 blocking checks of the 6 it shows
    assert message.startswith("promotion of staging v1 refused: 5 of the 5 promotion checks")
    assert "of the 6 checks on backtest_report, 1 only warns" in message
    stores = deployed_stores()
    client = MlflowClient(tracking_uri=stores.tracking_uri)
    assert "production" not in client.get_registered_model(config.MODEL_NAME).aliases


def test_a_backtest_costed_below_the_policy_fails_the_sharpe_check(
    pipeline: SimpleNamespace,
) -> None:
    free = {"ops": {"backtest_report": {"config": {"cost_bps": 0.0}}}}
    rerun = materialize(pipeline.defs, pipeline.instance, "backtest_report", run_config=free)
    assert rerun.success, failure_message(rerun)
    checks = {c.check_name: c for c in rerun.get_asset_check_evaluations()}
    sharpe = checks["sharpe_after_costs_and_dsr"]
    assert not sharpe.passed and "the policy judges at ≥ 5 bps" in (sharpe.description or "")


def test_override_needs_a_reason(pipeline: SimpleNamespace) -> None:
    refused = materialize_production(pipeline.defs, pipeline.instance, override=True)
    assert "needs a written reason" in refused_verdict(refused)


def test_promotion_accepted_after_checks_pass(pipeline: SimpleNamespace) -> None:
    rerun = materialize(pipeline.defs, pipeline.instance, "backtest_report")
    assert rerun.success
    promoted = materialize_production(pipeline.defs, pipeline.instance, reason="test promote")
    assert promoted.success, failure_message(promoted)
    stores = deployed_stores()
    client = MlflowClient(tracking_uri=stores.tracking_uri)
    production = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    staging = client.get_model_version_by_alias(config.MODEL_NAME, config.STAGING_ALIAS)
    assert production.version == staging.version
    assert production.tags.get("promotion_reason") == "test promote"
    exported = verify_export(Path(stores.models_dir) / "production")
    assert str(exported["model_version"]) == str(production.version)
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    assert event.asset_materialization.metadata["promoted_by"].value


def test_the_promoted_version_has_its_model_card_everywhere(pipeline: SimpleNamespace) -> None:
    stores = deployed_stores()
    client = MlflowClient(tracking_uri=stores.tracking_uri)
    production = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    folder = Path(stores.models_dir) / "production"
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# Model card: {config.MODEL_NAME} v{production.version} (")
    assert "65 %" in card  # what an implausible accuracy would mean here
    assert "synthetic(seed=" in card and production.tags["data_fingerprint"] in card
    walk_forward = card.split("## Walk-forward evaluation")[1].split("## Promotion criteria")[0]
    assert "| staging |" in walk_forward and "| always_up |" in walk_forward
    assert "| beats_majority_class | pass |" in card
    slices = card.split("## Where the edge lives")[1].split("## Promotion criteria")[0]
    assert "| all | all rows |" in slices and "| ticker group | " in slices
    assert "promoted by " in card and "reason: test promote" in card
    # the same card beside the model in the registry
    registry_copy = client.download_artifacts(production.run_id, "model_card/MODEL_CARD.md")
    assert Path(registry_copy).read_text() == card
    # metadata.json: the headline metrics and the training date the plan asks for
    metadata = verify_export(folder)  # the card is under the checksums too
    assert 0.0 < metadata["metrics"]["accuracy"] < 1.0
    assert "always_up" in metadata["accuracy_of_contenders"]
    assert metadata["trained_at"][:4] == production.tags["promoted_at"][:4]
    staging_card = Path(stores.models_dir) / "staging" / "MODEL_CARD.md"
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("staging_model"))
    assert event.asset_materialization.metadata["model_card"].value == str(staging_card)
    promoted = pipeline.instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    assert promoted.asset_materialization.metadata["model_card"].value == card


def test_promotion_refused_when_checks_are_stale(pipeline: SimpleNamespace) -> None:
    retrained = materialize(
        pipeline.defs,
        pipeline.instance,
        "staging_model",
        run_config={"ops": {"staging_model": {"config": {"seed": 11}}}},
    )
    assert retrained.success, failure_message(retrained)
    refused = materialize_production(pipeline.defs, pipeline.instance, reason="too early")
    message = refused_verdict(refused)
    assert "stale" in message and "materialize backtest_report" in message


def test_promotion_refused_without_staging(platform_home: Path) -> None:
    with dg.instance_for_test() as instance:
        defs = build_definitions(small_overrides())
        refused = materialize_production(defs, instance)
        assert "no staging model" in refused_verdict(refused)


def test_rollback_job_restores_previous(pipeline: SimpleNamespace) -> None:
    stores = deployed_stores()
    client = MlflowClient(tracking_uri=stores.tracking_uri)
    first = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    # Promote the retrained version by override, then roll back to the first.
    promoted = materialize_production(
        pipeline.defs, pipeline.instance, override=True, reason="exercise rollback"
    )
    assert promoted.success, failure_message(promoted)
    second = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    assert second.version != first.version
    assert second.tags.get("override") == "true"
    rolled = execute(
        pipeline.defs,
        pipeline.instance,
        trigger="test",
        job="rollback_job",
        run_config={"ops": {"rollback_production": {"config": {"reason": "test"}}}},
    )
    assert rolled.success, failure_message(rolled)
    now = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    assert now.version == first.version
    exported = verify_export(Path(stores.models_dir) / "production")
    assert str(exported["model_version"]) == str(first.version)
    latest = pipeline.instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    assert latest.asset_materialization.metadata["production_version"].value == str(first.version)
    # The alias check is evaluated by the rollback itself: it shows the version rolled back to.
    key = dg.AssetCheckKey(dg.AssetKey("production_model"), "production_alias_set_by_platform")
    [record] = pipeline.instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    assert record.evaluation.passed
    assert record.evaluation.metadata["production_version"].value == str(first.version)


@pytest.mark.parametrize(
    ("bad", "field"), [({"n_trials": 0}, "n_trials"), ({"timeout_s": -5.0}, "timeout_s")]
)
def test_bad_tuning_config_refused_before_work(
    pipeline: SimpleNamespace, bad: dict, field: str
) -> None:
    studies_before = len(optuna.study.get_all_study_summaries(deployed_stores().optuna_storage))
    result = materialize(
        pipeline.defs, pipeline.instance, "tuned_params", run_config=small_run_config(**bad)
    )
    assert not result.success
    assert field in failure_message(result)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert not retries  # bad config is never retried
    studies = optuna.study.get_all_study_summaries(deployed_stores().optuna_storage)
    assert len(studies) == studies_before  # refused before any study was touched


def test_unknown_pruner_is_refused_by_the_launchpad_config(pipeline: SimpleNamespace) -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="pruner"):
        materialize(
            pipeline.defs,
            pipeline.instance,
            "tuned_params",
            run_config=small_run_config(pruner="sometimes"),
        )


def test_bad_validation_scheme_names_the_field() -> None:
    with pytest.raises(ValueError, match="horizon"):
        ValidationScheme(horizon=63, refit_months=3)


def test_rolled_back_version_is_not_promoted_again_without_override(
    pipeline: SimpleNamespace,
) -> None:
    # After test_rollback_job_restores_previous: production is the first version again and
    # staging is the version that was rolled back out of production.
    rerun = materialize(pipeline.defs, pipeline.instance, "backtest_report")
    assert rerun.success, failure_message(rerun)
    refused = materialize_production(pipeline.defs, pipeline.instance, reason="again")
    message = refused_verdict(refused)
    assert "rolled back out of production" in message
    assert "a retrain cannot make it promotable" in message
    assert "materialize backtest_report" not in message  # it would not help


def test_four_years_of_bars_run_to_a_verdict_with_windows_fitted(platform_home: Path) -> None:
    """The default windows want a decade; four years end in a verdict, not a crash, with the
    shortened windows and the reason on tuned_params."""
    from mlplatform.orchestration.resources import MarketDataSource

    short = {"market_data": MarketDataSource(seed=4, n_tickers=6, years=4, as_of="2026-06-30")}
    with dg.instance_for_test() as instance:
        result = run_pipeline(build_definitions(short), instance, small_run_config(n_trials=2))
        assert result.success, failure_message(result)
        tuned = instance.get_latest_materialization_event(dg.AssetKey("tuned_params"))
        windows = tuned.asset_materialization.metadata["windows"].value
        assert "evaluation window" in windows and "not 36" in windows
        verdicts = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert set(BLOCKING_CRITERIA) <= set(verdicts)  # judged
