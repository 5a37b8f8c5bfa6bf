"""The last mile on real stores: the day's predictions in the prediction log, served by the
versions that served at the date's close, checked for coverage and training/serving parity;
live performance joined with outcomes; the decay check and the sensor it arms."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlplatform import config
from mlplatform.cli import execute, main, run_pipeline
from mlplatform.definitions import build_definitions
from mlplatform.monitoring.live import CHAMPION
from mlplatform.registry import load_booster
from mlplatform.serving import PredictionLog, ServingModel, score
from mlplatform_tests.conftest import (
    failure_message,
    lenient_policy,
    materialize,
    small_overrides,
    small_run_config,
)

TODAY = pd.Timestamp.today().normalize()
LAST_BAR = (TODAY - pd.offsets.BDay(0 if TODAY.dayofweek < 5 else 1)).date().isoformat()


def deployment() -> dict[str, object]:
    """A small market up to today with a strong planted edge, so that losing it shows within
    a few months of daily looks (the decay test's power grows with the edge and the tickers)."""
    return small_overrides(
        policy=lenient_policy(), as_of=TODAY.date().isoformat(), signal_strength=0.9
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """v1 promoted, v2 waiting in staging, on a small market whose last bar is today."""
    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(config.HOME_ENV, str(root / "home"))
        mp.setenv(config.MODELS_DIR_ENV, str(root / "models"))
        mp.delenv(config.DATA_PATH_ENV, raising=False)
        mp.delenv(config.PREDICTIONS_DIR_ENV, raising=False)
        with dg.instance_for_test() as instance:
            defs = build_definitions(deployment())
            assert run_pipeline(defs, instance, small_run_config(n_trials=2)).success
            promote = {"ops": {"production_model": {"config": {"reason": "v1"}}}}
            assert materialize(defs, instance, "production_model", run_config=promote).success
            retrain = {"ops": {"staging_model": {"config": {"seed": 9}}}}
            assert materialize(
                defs, instance, "staging_model", "backtest_report", run_config=retrain
            ).success
            yield SimpleNamespace(defs=defs, instance=instance, root=root, mp=mp)


def _score(served: SimpleNamespace, date: str) -> dg.ExecuteInProcessResult:
    return execute(
        served.defs,
        served.instance,
        trigger="test",
        assets=[dg.AssetKey("predictions")],
        partition_key=date,
    )


def test_the_day_is_scored_by_production_and_the_waiting_challenger(
    served: SimpleNamespace,
) -> None:
    result = _score(served, LAST_BAR)
    assert result.success, failure_message(result)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {
        "every_ticker_scored",
        "probabilities_in_unit_interval",
        "champion_is_production",
        "export_reproduces_the_scores",
    }
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    rows = pd.read_parquet(PredictionLog(config.predictions_dir()).path(LAST_BAR).path)
    assert set(rows["role"]) == {"champion", "challenger"}
    assert set(rows.loc[rows["role"] == "champion", "version"]) == {"1"}
    assert set(rows.loc[rows["role"] == "challenger", "version"]) == {"2"}
    assert rows["ticker"].nunique() == 6 and len(rows) == 12
    assert rows["p_up"].between(0, 1).all() and set(rows["direction"]) <= {"up", "down"}
    assert rows["feature_schema_hash"].str.len().min() > 0


def test_scoring_a_date_again_replaces_its_file_whole(served: SimpleNamespace) -> None:
    log = PredictionLog(config.predictions_dir())
    before = log.read(LAST_BAR)
    assert _score(served, LAST_BAR).success
    after = log.read(LAST_BAR)
    assert len(after) == len(before)  # replaced, not appended
    folder = Path(config.predictions_dir())
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_a_backfilled_date_never_borrows_a_later_version(served: SimpleNamespace) -> None:
    past = (TODAY - pd.offsets.BDay(30)).date().isoformat()
    result = _score(served, past)
    assert result.success, failure_message(result)
    event = served.instance.get_latest_materialization_event(dg.AssetKey("predictions"))
    assert event.asset_materialization.metadata["served_by"].value == "no model in production"
    assert PredictionLog(config.predictions_dir()).read(past).empty


def test_scoring_a_date_without_features_says_so(served: SimpleNamespace) -> None:
    result = _score(served, "2024-01-02")  # before the small market's first warm bar
    assert not result.success
    assert "no feature rows for 2024-01-02" in failure_message(result)


def test_make_predict_prints_the_scores(
    served: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    served.mp.setenv("DAGSTER_HOME", str(served.instance.root_directory))
    assert main(["predict", "--date", LAST_BAR, "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"role":"champion"' in out and '"version":"1"' in out
    assert main(["predict", "--date", "2026-12-05x"]) == 2


def _simulated_log(served: SimpleNamespace, days: int, skill: bool) -> None:
    """Days of the past as if production (v1) had scored each at its close: the log is data
    another process wrote, so a test can give it the history a year of days would."""
    features = served.defs.load_asset_value("features", instance=served.instance)
    uri = config.mlflow_tracking_uri()
    booster = load_booster(uri, config.MODEL_NAME, "1")
    model = ServingModel(config.MODEL_NAME, "1", "1.0.0", CHAMPION, booster, "schema")
    log = PredictionLog(config.predictions_dir())
    dates = features.index.get_level_values("date").unique().sort_values()[-days - 1 : -1]
    rng = np.random.default_rng(0)
    for date in dates:
        rows = features[features.index.get_level_values("date") == date]
        frame = score(rows, [model], datetime.now(UTC))
        if not skill:  # a model that lost its edge: its directions are coin flips
            frame["p_up"] = rng.uniform(0.3, 0.7, len(frame))
        log.write(date.date().isoformat(), frame)


def test_live_performance_joins_outcomes_and_the_decay_check_acts_once(
    served: SimpleNamespace, webhook: object
) -> None:
    served.mp.setenv(config.WEBHOOK_URL_ENV, webhook.url)  # type: ignore[attr-defined]
    defs = build_definitions(deployment())
    _simulated_log(served, days=120, skill=False)
    result = materialize(defs, served.instance, "live_performance")
    assert result.success, failure_message(result)
    live = result.output_for_node("live_performance")
    champion = live.champion("1")
    assert champion is not None and champion.records["since_promotion"]["days"] >= 119
    assert champion.expectation is not None  # backtest_report recorded what v1 promised
    (decay,) = result.get_asset_check_evaluations()
    assert not decay.passed and "fell significantly below" in (decay.description or ""), {
        k: v.value for k, v in decay.metadata.items()
    }
    again = materialize(defs, served.instance, "live_performance")
    assert again.success
    alerts = [m for m in webhook.received if m["kind"] == "performance_decay"]  # type: ignore[attr-defined]
    assert len(alerts) == 1  # once per alarm
    sensor = defs.resolve_sensor_def("decay_sensor")

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=served.instance,
            definitions=defs,
            cursor=cursor,
            resources={"stores": defs.resources["stores"]},
        )
        return sensor.evaluate_tick(context)

    first = tick(None)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].run_key.startswith(f"decay:{config.MODEL_NAME}:v1:")
    # The retrain it asked for registers a version that waits for a person: no second request.
    retrained = materialize(
        defs,
        served.instance,
        "staging_model",
        run_config={"ops": {"staging_model": {"config": {"seed": 3}}}},
    )
    assert retrained.success
    second = tick(first.cursor)
    assert not second.run_requests and "waits for a person" in (second.skip_message or "")
