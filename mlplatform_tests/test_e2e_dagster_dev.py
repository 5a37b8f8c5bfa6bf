"""End to end: the real `dagster dev` (webserver + daemon) on a temporary home folder.

The drift sensor is switched on through Dagster's GraphQL API, a drifted data refresh is
materialized, and the lag from that materialization to the launch of the retrain run is measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest

from mlplatform import config
from mlplatform.cli import prepare_home, run_pipeline
from mlplatform.data import generate_market
from mlplatform.definitions import build_definitions
from mlplatform.orchestration.resources import MarketDataSource, ValidationScheme
from mlplatform_tests.conftest import SMALL_VALIDATION, small_run_config
from mlplatform_tests.dagster_dev_support import (
    LOCATION,
    dagster_dev,
    dev_log,
    graphql,
    wait_for_location,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REGIME_CHANGE = "2026-03-02"


def _write_market(path: Path, as_of: str) -> None:
    market = generate_market(
        seed=3, n_tickers=10, years=3, as_of=as_of, regime_change=REGIME_CHANGE
    )
    market.prices.to_csv(path, index=False)


def test_drift_to_retrain_lag_through_dagster_dev(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_file = platform_home.parent / "prices.csv"
    _write_market(data_file, as_of="2026-02-20")
    monkeypatch.setenv(config.DATA_PATH_ENV, str(data_file))
    dagster_home = prepare_home()
    instance = dg.DagsterInstance.get()
    file_source = MarketDataSource(kind="file", path=str(data_file))
    trained = run_pipeline(
        build_definitions(
            {"market_data": file_source, "validation": ValidationScheme(**SMALL_VALIDATION)}
        ),
        instance,
        small_run_config(n_trials=2),
    )
    assert trained.success

    with dagster_dev(dagster_home) as (process, port):
        wait_for_location(port, process, time.time() + 180, dev_log(dagster_home))
        started = graphql(
            port,
            """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
                 __typename ... on Sensor { sensorState { status } }
                 ... on PythonError { message } } }""",
            {
                "s": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": "__repository__",
                    "sensorName": "drift_sensor",
                }
            },
        )["startSensor"]
        assert started["__typename"] == "Sensor", started
        assert started["sensorState"]["status"] == "RUNNING"

        _write_market(data_file, as_of="2026-04-17")  # the vendor delivers bars past the change
        launched = graphql(
            port,
            """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
                 __typename ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message } } }""",
            {
                "p": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": "__repository__",
                        "pipelineName": "__ASSET_JOB",
                        "assetSelection": [
                            {"path": ["raw_prices"]},
                            {"path": ["market_truth"]},
                            {"path": ["features"]},
                        ],
                    },
                    "mode": "default",
                }
            },
        )["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched

        deadline = time.time() + 240
        materialized_at = retrain_at = None
        while time.time() < deadline and retrain_at is None:
            time.sleep(2)
            records = instance.fetch_materializations(dg.AssetKey("features"), limit=1).records
            if records and records[0].run_id == launched["run"]["runId"]:
                materialized_at = records[0].timestamp
            runs = instance.get_run_records(
                dg.RunsFilter(job_name="retrain_job", tags={"mlplatform/trigger": "drift_sensor"})
            )
            if runs:
                retrain_at = runs[0].create_timestamp.timestamp()
        assert materialized_at is not None, "the refresh never materialized features"
        assert retrain_at is not None, "the drift sensor never launched retrain_job"
        lag = retrain_at - materialized_at
        print(f"\nDRIFT_TO_RETRAIN_LAG_S={lag:.1f}")
        (platform_home / "drift_lag.json").write_text(json.dumps({"lag_s": lag}))
        assert lag > 0
