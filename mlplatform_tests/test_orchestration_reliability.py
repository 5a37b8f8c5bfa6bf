"""Failures leave nothing half done; transient store errors are retried; runs are reproducible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import OperationalError

from mlplatform import config
from mlplatform.cli import execute, markdown_summary, run_pipeline
from mlplatform.data import generate_market
from mlplatform.definitions import build_definitions
from mlplatform.registry import export as registry_export
from mlplatform.registry import staging as registry_staging
from mlplatform_tests.conftest import (
    WebhookReceiver,
    deployed_stores,
    failure_message,
    lenient_policy,
    materialize,
    small_overrides,
    small_run_config,
)


def _statuses(tracking_uri: str) -> list[str]:
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r.info.status for r in client.search_runs(experiments, max_results=1000)]


def test_retrain_finished_is_sent_once_and_the_job_summary_written(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, webhook: WebhookReceiver
) -> None:
    monkeypatch.setenv(config.WEBHOOK_URL_ENV, webhook.url)
    with dg.instance_for_test() as instance:
        result = run_pipeline(
            build_definitions(small_overrides(policy=lenient_policy())),
            instance,
            small_run_config(n_trials=2),
        )
    assert result.success
    kinds = [payload["kind"] for payload in webhook.received]
    assert kinds == ["retrain_finished"]
    [finished] = webhook.received
    assert finished["fields"]["staging_version"] == "1"
    assert finished["fields"]["verdict"] == "passed"
    assert "ready for review" in finished["title"]
    assert finished["fields"]["trigger"] == "cli_run"
    assert 0.0 < finished["fields"]["accuracy"] < 1.0
    assert webhook.url not in json.dumps(webhook.received)
    summary = markdown_summary(result)  # what the GitHub workflow puts on its job summary
    walk_forward, criteria = summary.split("### Promotion criteria")
    assert "staging" in walk_forward and "accuracy" in walk_forward
    assert "| beats_majority_class | pass |" in criteria
    assert "**Ready for review.**" in summary


def test_failure_after_alias_move_leaves_registry_export_and_mlflow_clean(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        defs = build_definitions(small_overrides(policy=lenient_policy()))
        first = run_pipeline(defs, instance, small_run_config(n_trials=2))
        assert first.success
        stores = deployed_stores()
        client = MlflowClient(tracking_uri=stores.tracking_uri)
        staging_dir = Path(stores.models_dir) / "staging"
        before_files = {p.name: p.read_bytes() for p in staging_dir.iterdir()}
        before_versions = [v.version for v in client.search_model_versions()]

        def crash(*_args: Any, **_kwargs: Any) -> None:
            raise RuntimeError("injected crash between the alias move and the export")

        monkeypatch.setattr(registry_export, "publish", crash)
        failed = materialize(
            defs,
            instance,
            "staging_model",
            run_config={"ops": {"staging_model": {"config": {"seed": 99}}}},
        )
        assert not failed.success
        assert not [e for e in failed.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert [v.version for v in client.search_model_versions()] == before_versions
        staging = client.get_model_version_by_alias(config.MODEL_NAME, config.STAGING_ALIAS)
        assert str(staging.version) == "1"
        assert {p.name: p.read_bytes() for p in staging_dir.iterdir()} == before_files
        statuses = _statuses(stores.tracking_uri)
        assert "RUNNING" not in statuses and "FAILED" in statuses


def test_transient_store_error_is_retried_with_backoff(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        defs = build_definitions(small_overrides(policy=lenient_policy()))
        assert materialize(
            defs, instance, "raw_prices", "market_truth", "features", "labels"
        ).success
        real = registry_staging.get_alias_version
        calls = {"n": 0}

        def flaky(*args: Any, **kwargs: Any):
            calls["n"] += 1
            if calls["n"] == 1:
                raise OperationalError("SELECT", {}, Exception("database is locked"))
            return real(*args, **kwargs)

        monkeypatch.setattr(registry_staging, "get_alias_version", flaky)
        result = materialize(
            defs, instance, "tuned_params", run_config=small_run_config(n_trials=2)
        )
    assert result.success
    assert calls["n"] >= 2
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    statuses = _statuses(deployed_stores().tracking_uri)
    assert statuses and set(statuses) == {"FINISHED"}  # the retry succeeded: not left FAILED


def test_same_seed_and_data_give_identical_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = []
    for attempt in ("a", "b"):
        monkeypatch.setenv(config.HOME_ENV, str(tmp_path / attempt / "home"))
        monkeypatch.setenv(config.MODELS_DIR_ENV, str(tmp_path / attempt / "models"))
        with dg.instance_for_test() as instance:
            defs = build_definitions(small_overrides(policy=lenient_policy()))
            result = materialize(
                defs,
                instance,
                "raw_prices",
                "market_truth",
                "features",
                "labels",
                "tuned_params",
                "staging_model",
                run_config=small_run_config(n_trials=3),
            )
            assert result.success
            params = next(
                e.event_specific_data.materialization.metadata["best_params"].value
                for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("tuned_params")
            )
        exports.append((params, (tmp_path / attempt / "models" / "staging" / "model.txt")))
    assert exports[0][0] == exports[1][0]
    assert exports[0][1].read_bytes() == exports[1][1].read_bytes()


def test_rollback_that_stops_half_way_says_so_and_repair_finishes_it(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.registry import aliases, export, verify_export

    with dg.instance_for_test() as instance:
        defs = build_definitions(small_overrides(policy=lenient_policy()))
        assert run_pipeline(defs, instance, small_run_config(n_trials=2)).success
        promote = {"ops": {"production_model": {"config": {"reason": "first"}}}}
        assert materialize(defs, instance, "production_model", run_config=promote).success
        retrain = {"ops": {"staging_model": {"config": {"seed": 5}}}}
        assert materialize(defs, instance, "staging_model", run_config=retrain).success
        override = {"ops": {"production_model": {"config": {"override": True, "reason": "t"}}}}
        assert materialize(defs, instance, "production_model", run_config=override).success

        def store_went_away(*_args: object, **_kwargs: object) -> None:
            raise OSError("store went away after the alias move")

        with monkeypatch.context() as patch:  # the move fails after the alias, so does its undo
            patch.setattr(export, "publish", store_went_away)
            patch.setattr(aliases, "move_back", store_went_away)
            half = execute(defs, instance, trigger="test", job="rollback_job")
        assert not half.success
        message = failure_message(half)
        assert "failed half way" in message and "make repair" in message

        repaired = execute(defs, instance, trigger="test", job="repair_export_job")
        assert repaired.success
        assert repaired.output_for_node("repair_production")["production_version"] == "1"
    stores = deployed_stores()
    assert str(verify_export(Path(stores.models_dir) / "production")["model_version"]) == "1"


def test_bad_input_file_names_the_place_and_changes_nothing(platform_home: Path) -> None:
    from mlplatform.orchestration.resources import MarketDataSource

    good = platform_home.parent / "good.csv"
    generate_market(seed=2, n_tickers=3, years=2, as_of="2026-06-30").prices.to_csv(
        good, index=False
    )
    bad = platform_home.parent / "bad.csv"
    lines = good.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[0], "not-a-date", 1)
    bad.write_text("\n".join(lines) + "\n")
    with dg.instance_for_test() as instance:
        ok = build_definitions({"market_data": MarketDataSource(kind="file", path=str(good))})
        assert materialize(ok, instance, "raw_prices", "market_truth").success
        before = instance.fetch_materializations(dg.AssetKey("raw_prices"), limit=1).records
        stored = (platform_home / "io" / "raw_prices").read_bytes()

        broken = build_definitions({"market_data": MarketDataSource(kind="file", path=str(bad))})
        result = materialize(broken, instance, "raw_prices", "market_truth", "features")
        assert not result.success
        message = failure_message(result)
        assert "bad.csv" in message and "not-a-date" in message
        assert not result.get_asset_materialization_events()
        after = instance.fetch_materializations(dg.AssetKey("raw_prices"), limit=1).records
        assert after[0].storage_id == before[0].storage_id
        assert (platform_home / "io" / "raw_prices").read_bytes() == stored
