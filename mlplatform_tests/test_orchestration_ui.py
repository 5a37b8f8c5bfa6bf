"""What a person reads in the Dagster UI: owners, tags, column descriptions, rounded numbers,
links that open in a browser, MLflow run names, and the alarm for an alias moved in MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlplatform import config
from mlplatform.cli import execute, refusal, run_pipeline
from mlplatform.definitions import build_definitions, defs
from mlplatform.features import FEATURE_COLUMNS, LABEL_DEFINITION, feature_description
from mlplatform.orchestration.metadata import (
    mlflow_artifact_url,
    rounded,
    rounded_metadata,
    table_metadata,
)
from mlplatform.orchestration.resources import mlflow_run_name
from mlplatform_tests.conftest import (
    WebhookReceiver,
    failure_message,
    lenient_policy,
    materialize,
    small_overrides,
    small_run_config,
)


def test_rounded_keeps_significant_digits() -> None:
    assert rounded(0.5617424242424243) == 0.5617
    assert rounded(1.2345678e-05) == 1.235e-05
    assert rounded(1234.5678, digits=3) == 1230.0
    assert rounded(None) is None and math.isnan(rounded(float("nan")))
    meta = rounded_metadata(
        {"acc": 0.5617424, "n": 7, "name": "x", "url": dg.MetadataValue.url("u")}
    )
    assert meta["acc"] == 0.5617 and meta["n"] == 7 and meta["name"] == "x"


def test_table_metadata_has_a_schema_and_rounded_cells() -> None:
    frame = pd.DataFrame(
        {"accuracy": [0.5617424, float("nan")], "rows": [120, 80], "passed": [True, False]},
        index=pd.Index(["staging", "production"], name="model"),
    )
    table = table_metadata(frame)
    assert [(c.name, c.type) for c in table.schema.columns] == [
        ("model", "string"),
        ("accuracy", "float"),
        ("rows", "int"),
        ("passed", "bool"),
    ]
    assert table.records[0].data == {
        "model": "staging",
        "accuracy": 0.5617,
        "rows": 120,
        "passed": True,
    }
    assert table.records[1].data["accuracy"] is None


def test_artifact_url_opens_the_run_artifact_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.MLFLOW_UI_URL_ENV, "http://mlflow.example:5000/")
    run = type("Run", (), {"info": type("Info", (), {"experiment_id": "3", "run_id": "abc"})})
    assert mlflow_artifact_url(run, "drift/drift_v2.html") == (
        "http://mlflow.example:5000/#/experiments/3/runs/abc/artifacts/drift/drift_v2.html"
    )


def test_every_feature_is_described_from_its_parameters() -> None:
    for name in FEATURE_COLUMNS:
        assert len(feature_description(name)) > 20, name
    assert "21 bar" in feature_description("ret_21")
    assert "vol_21" in feature_description("xs_rank_vol_21")


def test_mlflow_runs_are_named_after_the_job_or_the_assets() -> None:
    keys = {dg.AssetKey(k) for k in ("features", "raw_prices", "tuned_params", "staging_model")}
    assert mlflow_run_name(dg.DagsterRun(job_name="retrain_job")) == "retrain_job"
    assert mlflow_run_name(
        dg.DagsterRun(job_name="__ASSET_JOB", asset_selection=frozenset(keys))
    ) == ("features, raw_prices, staging_model +1 more")
    single = frozenset({dg.AssetKey("production_model")})
    assert mlflow_run_name(dg.DagsterRun(job_name="__ASSET_JOB", asset_selection=single)) == (
        "production_model"
    )


def test_every_asset_has_owners_cadence_and_code_references() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == list(config.ASSET_OWNERS), key
        assert node.tags["cadence"] in {"daily", "weekly", "manual"}, key
        assert "dagster/code_references" in node.metadata, key
    assert graph.get(dg.AssetKey("features")).metadata["label"] == LABEL_DEFINITION
    for name in ("weekly_retrain_schedule", "daily_refresh_schedule"):
        assert "NFR" not in (defs.resolve_schedule_def(name).description or "")


def test_run_metadata_and_an_alias_moved_in_mlflow_is_called_out(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, webhook: WebhookReceiver
) -> None:
    monkeypatch.setenv(config.WEBHOOK_URL_ENV, webhook.url)
    defs_ = build_definitions(small_overrides(policy=lenient_policy()))
    with dg.instance_for_test() as instance:
        assert run_pipeline(defs_, instance, small_run_config(n_trials=2)).success

        features = instance.get_latest_materialization_event(dg.AssetKey("features"))
        meta = features.asset_materialization.metadata
        columns = {c.name: c.description for c in meta["dagster/column_schema"].value.columns}
        assert set(FEATURE_COLUMNS) <= set(columns) and all(columns.values())

        drift = instance.get_latest_materialization_event(dg.AssetKey("drift_report"))
        meta = drift.asset_materialization.metadata
        assert meta["report"].value.startswith(config.mlflow_ui_url() + "/#/experiments/")
        assert (
            meta["report"].value.endswith(".html") and "/artifacts/drift/" in meta["report"].value
        )
        assert "drift sensor acts on" in meta["about_the_two_drift_shares"].value
        top = meta["top_drifted_features"].value
        assert [c.name for c in top.schema.columns] == ["feature", "psi", "report_psi"]
        value = meta["drift_share"].value
        assert value == rounded(value)

        client = MlflowClient(config.mlflow_tracking_uri())
        experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
        names = {r.info.run_name for r in client.search_runs([experiment.experiment_id])}
        assert "backtest_report, drift_report, features +5 more" in names
        assert not any(n.startswith("__ASSET_JOB") for n in names)

        assert materialize(defs_, instance, "production_model").success  # v1, by the platform
        assert materialize(defs_, instance, "staging_model", "backtest_report").success  # v2

        def refresh() -> dg.AssetCheckEvaluation:
            features = instance.get_latest_materialization_event(dg.AssetKey("features"))
            day = str(features.asset_materialization.metadata["last_date"].value)
            result = execute(
                defs_, instance, trigger="test", job="data_refresh_job", partition_key=day
            )
            assert result.success, failure_message(result)
            (evaluation,) = [
                e
                for e in result.get_asset_check_evaluations()
                if e.check_name == "production_alias_set_by_platform"
            ]
            assert evaluation.asset_key == dg.AssetKey("production_model")
            return evaluation

        assert refresh().passed

        # What MLflow's "Promote model" button does: only the alias moves.
        client.set_registered_model_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS, "2")
        for _ in range(2):  # the daily refresh tells production_model's page every day...
            evaluation = refresh()
            assert not evaluation.passed
            assert "production points at v2" in evaluation.description
            assert "promotion of v1" in evaluation.description
        alerts = [m for m in webhook.received if m["kind"] == "alias_moved_outside"]
        assert len(alerts) == 1 and "v2" in alerts[0]["title"]  # ...and the channels once

        refused = materialize(defs_, instance, "production_model")
        verdict = refusal(refused)
        assert verdict is not None and "production points at v2" in verdict
        assert "rollback_job" in verdict
