"""Schedules, the drift sensor and the failure notifications, evaluated against a real instance."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from mlplatform import config
from mlplatform.cli import run_pipeline
from mlplatform.definitions import build_definitions, defs
from mlplatform_tests.conftest import (
    WebhookReceiver,
    drift_sensor_tick,
    lenient_policy,
    materialize,
    small_overrides,
    small_run_config,
)

PROJECT_ROOT = config.PROJECT_ROOT
REGIME_CHANGE = "2026-03-02"
DRIFT_MARKET = {"n_tickers": 10, "regime_change": REGIME_CHANGE}


def test_definitions_load_with_everything() -> None:
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {
        "retrain_job",
        "data_refresh_job",
        "rollback_job",
        "repair_export_job",
        "prune_job",
    }
    assert {s.name for s in repo.schedule_defs} == {
        "weekly_retrain_schedule",
        "daily_refresh_schedule",
        "weekly_prune_schedule",
    }
    assert {s.name for s in repo.sensor_defs} >= {
        "drift_sensor",
        "decay_sensor",
        "run_failure_notification_sensor",
    }
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {
        "raw_prices": "data",
        "market_truth": "data",
        "features": "data",
        "labels": "training",
        "tuned_params": "training",
        "staging_model": "training",
        "backtest_report": "evaluation",
        "production_model": "deployment",
        "drift_report": "monitoring",
        "predictions": "serving",
        "live_performance": "serving",
    }


def test_automation_ships_stopped() -> None:
    assert defs.resolve_schedule_def("weekly_retrain_schedule").default_status == (
        dg.DefaultScheduleStatus.STOPPED
    )
    assert defs.resolve_schedule_def("daily_refresh_schedule").default_status == (
        dg.DefaultScheduleStatus.STOPPED
    )
    assert defs.resolve_sensor_def("drift_sensor").default_status == (
        dg.DefaultSensorStatus.STOPPED
    )


def test_weekly_schedule_targets_retrain_at_sunday_two_utc() -> None:
    schedule = defs.resolve_schedule_def("weekly_retrain_schedule")
    assert schedule.cron_schedule == "0 2 * * 0"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "retrain_job"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    )
    data = schedule.evaluate_tick(context)
    assert len(data.run_requests or []) == 1
    assert data.run_requests[0].tags["mlplatform/trigger"] == "weekly_schedule"


def test_retrain_job_selection() -> None:
    job = defs.resolve_job_def("retrain_job")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {"features", "labels", "tuned_params", "staging_model", "backtest_report"}
    checks = {k.name for k in job.asset_layer.asset_graph.asset_check_keys}
    assert "beats_majority_class" in checks


def _refresh(instance: dg.DagsterInstance, as_of: str) -> dg.Definitions:
    defs_ = build_definitions(small_overrides(policy=lenient_policy(), as_of=as_of, **DRIFT_MARKET))
    assert materialize(defs_, instance, "raw_prices", "market_truth", "features").success
    return defs_


def test_drift_sensor_requests_exactly_one_retrain_after_regime_change(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, webhook: WebhookReceiver
) -> None:
    monkeypatch.setenv(config.WEBHOOK_URL_ENV, webhook.url)
    with dg.instance_for_test() as instance:
        before = build_definitions(
            small_overrides(policy=lenient_policy(), as_of="2026-02-20", **DRIFT_MARKET)
        )
        trained = run_pipeline(before, instance, small_run_config(n_trials=3))
        assert trained.success

        data = drift_sensor_tick(before, instance, None)
        assert not data.run_requests
        assert "drift share" in (data.skip_message or "")
        assert "below the retrain threshold" in data.skip_message

        data = drift_sensor_tick(before, instance, data.cursor)  # nothing new: skip without work
        assert not data.run_requests
        assert "no new features" in data.skip_message

        assert materialize(before, instance, "raw_prices", "market_truth").success
        # new bars, features not recomputed yet
        data = drift_sensor_tick(before, instance, data.cursor)
        assert not data.run_requests and "materialize features" in data.skip_message

        after = _refresh(instance, as_of="2026-04-17")  # about 35 business days past the change
        data = drift_sensor_tick(after, instance, data.cursor)
        assert len(data.run_requests) == 1
        request = data.run_requests[0]
        assert request.run_key.endswith("2026-04-17")
        assert float(request.tags["mlplatform/drift_share"]) >= config.DRIFT.drift_share

        data = drift_sensor_tick(after, instance, data.cursor)
        assert not data.run_requests
        drift = [p for p in webhook.received if p["kind"] == "drift_detected"]
        assert len(drift) == 1  # told once, when the sensor acted
        assert request.run_key in drift[0]["fields"]["requested"]
        assert drift[0]["fields"]["threshold"] == config.DRIFT.psi_threshold
        psi = {k: v for k, v in drift[0]["fields"].items() if k.startswith("psi_")}
        assert psi and min(psi.values()) >= config.DRIFT.psi_threshold

        again = _refresh(instance, as_of="2026-04-17")  # same window re-materialized
        repeat = drift_sensor_tick(again, instance, data.cursor)
        assert not repeat.run_requests and "already requested" in repeat.skip_message
        # even without the cooldown: same run key
        fresh_cursor = drift_sensor_tick(again, instance, None)
        assert fresh_cursor.run_requests[0].run_key == request.run_key


def test_failed_run_is_notified_by_webhook(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, webhook: WebhookReceiver, caplog
) -> None:
    monkeypatch.setenv(config.WEBHOOK_URL_ENV, webhook.url)
    from mlplatform.orchestration.resources import MarketDataSource

    missing = str(platform_home / "no-such-prices.csv")
    defs_ = build_definitions({"market_data": MarketDataSource(kind="file", path=missing)})
    with dg.instance_for_test() as instance:
        failed = materialize(defs_, instance, "raw_prices", "market_truth")
        assert not failed.success
        run = instance.get_run_by_id(failed.run_id)
        failure = next(e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_notification_sensor",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure,
            resources={key: defs_.resources[key] for key in ("notifier", "stores")},
        ).for_run_failure()
        defs_.resolve_sensor_def("run_failure_notification_sensor")(context)
    assert len(webhook.received) == 1
    payload = webhook.received[0]
    assert payload["kind"] == "run_failed" and payload["fields"]["run_id"] == failed.run_id
    assert "secret-token" not in caplog.text


def test_dg_checks_and_lists_the_code_location() -> None:
    """The definitions load the way create-dagster projects load them."""
    dg_cli = str(Path(sys.executable).parent / "dg")
    checked = subprocess.run(
        [dg_cli, "check", "defs"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run(
        [dg_cli, "list", "defs", "--json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert listed.returncode == 0, listed.stderr
    assert "production_model" in listed.stdout and "retrain_job" in listed.stdout
