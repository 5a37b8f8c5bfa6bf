"""Bad input found by an adversarial user (issue 9): each gets a named error and changes nothing."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlplatform import config
from mlplatform.data import DataValidationError, generate_market, load_prices
from mlplatform.definitions import build_definitions
from mlplatform.orchestration.resources import MarketDataSource
from mlplatform_tests.conftest import deployed_stores, failure_message, materialize, small_overrides
from mlplatform_tests.test_data_loader import MIN, bars, write_csv

# --- dates ---------------------------------------------------------------------------------------


def _day_first(tmp: Path, fmt: str, start: str = "2015-01-02", n: int = 30) -> Path:
    frame = bars("SPX", n=n, start=start)
    frame["date"] = frame["date"].dt.strftime(fmt)
    return write_csv(tmp / "spx.csv", frame)


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%d.%m.%Y"])
def test_day_first_dates_are_refused_unless_the_format_is_given(tmp_path: Path, fmt: str) -> None:
    path = _day_first(tmp_path, fmt)
    with pytest.raises(DataValidationError) as caught:
        load_prices(path, min_history_days=MIN)
    err = caught.value
    first = pd.Timestamp("2015-01-02").strftime(fmt)  # 2 January, read as 1 February before
    assert (Path(err.file).name, err.ticker, err.date, err.column) == (
        "spx.csv",
        "SPX",
        first,
        "date",
    )
    assert "ambiguous" in err.reason and "line 2" in err.reason
    assert f"date_format {fmt!r}" in err.reason  # the later 13/01 tells which order the file uses
    assert config.DATE_FORMAT_ENV in err.reason  # where the platform's user sets it

    loaded = load_prices(path, min_history_days=MIN, date_format=fmt)
    assert loaded["date"].tolist() == list(pd.bdate_range("2015-01-02", periods=30))
    assert (loaded["date"].dt.dayofweek < 5).all()  # no Sunday 2015-01-04


def test_only_ambiguous_dates_ask_for_a_format(tmp_path: Path) -> None:
    path = _day_first(tmp_path, "%d/%m/%Y", n=5)  # 2 to 8 January: every day is 12 or less
    with pytest.raises(DataValidationError, match=r"'%d/%m/%Y' \(day first\) or '%m/%d/%Y'"):
        load_prices(path, min_history_days=MIN)


def test_dates_not_matching_the_configured_format_are_named(tmp_path: Path) -> None:
    path = _day_first(tmp_path, "%d/%m/%Y")
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace(lines[6].split(",")[0], "2015-01-09", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as caught:
        load_prices(path, min_history_days=MIN, date_format="%d/%m/%Y")
    assert caught.value.date == "2015-01-09"
    assert "does not match date_format '%d/%m/%Y'" in str(caught.value)
    assert "line 7" in str(caught.value)


@pytest.mark.parametrize(
    ("date_format", "words"),
    [("dd/mm/yyyy", "has no strftime codes (e.g. '%d/%m/%Y')"), ("%d/%Q", "is not usable")],
)
def test_an_unusable_date_format_says_so(tmp_path: Path, date_format: str, words: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        load_prices(_day_first(tmp_path, "%d/%m/%Y"), min_history_days=MIN, date_format=date_format)
    assert f"date_format {date_format!r} {words}" in caught.value.reason


def test_an_unreadable_as_of_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="as_of 'soon' is not a date"):
        load_prices(write_csv(tmp_path / "p.csv", bars()), min_history_days=MIN, as_of="soon")


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%d %b %Y", "%b %d, %Y", "%Y/%m/%d"])
def test_unambiguous_date_forms_still_load(tmp_path: Path, fmt: str) -> None:
    loaded = load_prices(_day_first(tmp_path, fmt), min_history_days=MIN)
    assert loaded["date"].tolist() == list(pd.bdate_range("2015-01-02", periods=30))


def test_out_of_range_date_is_reported_on_its_own_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", bars(n=8))
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace(lines[6].split(",")[0], "2300-01-05", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as caught:
        load_prices(path, min_history_days=MIN)
    assert caught.value.date == "2300-01-05"
    assert "out of range" in caught.value.reason and "line 7" in caught.value.reason


def test_future_dated_bar_is_refused(tmp_path: Path) -> None:
    frame = bars(n=6)
    frame.loc[5, "date"] = pd.Timestamp("2099-01-05")
    path = write_csv(tmp_path / "p.csv", frame)
    with pytest.raises(DataValidationError) as caught:
        load_prices(path, min_history_days=MIN)
    err = caught.value
    assert (Path(err.file).name, err.ticker, err.date) == ("p.csv", "AAPL", "2099-01-05")
    assert "after today" in err.reason


def test_bars_after_the_configured_as_of_are_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", bars(n=5))  # 2024-03-04 to 2024-03-08
    with pytest.raises(DataValidationError) as caught:
        load_prices(path, min_history_days=MIN, as_of="2024-03-06")
    assert caught.value.date == "2024-03-07"
    assert "after the as-of date 2024-03-06 (2 future-dated bars)" in caught.value.reason
    assert len(load_prices(path, min_history_days=MIN, as_of="2024-03-08")) == 5


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("close", 1e300, "open 9.950000000000001e+299 is implausibly large"),
        ("high", 5e15, "high 5000000000000000.0 is implausibly large"),
        ("volume", 1e300, "volume 1e+300 is implausibly large"),
    ],
)
def test_absurd_values_are_refused_naming_ticker(
    tmp_path: Path, column: str, value: float, text: str
) -> None:
    frame = pd.concat([bars("AAA"), bars("BBB")], ignore_index=True)
    if column == "close":
        frame.loc[frame["ticker"] == "BBB", ["open", "high", "low", "close"]] *= value / 100
    else:
        frame.loc[7, column] = value
    with pytest.raises(DataValidationError) as caught:
        load_prices(write_csv(tmp_path / "p.csv", frame), min_history_days=MIN)
    assert caught.value.ticker == "BBB"
    assert text in caught.value.reason and "overflow" in caught.value.reason


def test_float32_close_beside_float64_high_is_not_an_error(tmp_path: Path) -> None:
    frame = bars("SPX")
    frame["close"] = np.float32(4676.69)
    frame["high"] = 4676.69  # the same number in float64 is below float32's 4676.68994140625...
    frame["open"] = 4670.0
    frame["low"] = 4660.0
    frame.astype({"close": "float32"}).to_parquet(tmp_path / "p.parquet", index=False)
    loaded = load_prices(tmp_path / "p.parquet", min_history_days=MIN)
    assert (loaded["high"] >= loaded["close"]).all()

    frame["high"] = 4676.68  # a real violation prints numbers that visibly differ
    frame.astype({"close": "float32"}).to_parquet(tmp_path / "q.parquet", index=False)
    with pytest.raises(DataValidationError) as caught:
        load_prices(tmp_path / "q.parquet", min_history_days=MIN)
    assert "high 4676.68 is below max(open, close) 4676.68994140625" in caught.value.reason


def test_negative_close_prints_a_plain_number(tmp_path: Path) -> None:
    frame = bars()
    frame.loc[2, "close"] = -3.0
    with pytest.raises(DataValidationError) as plain:
        load_prices(write_csv(tmp_path / "p.csv", frame), min_history_days=MIN)
    assert "close -3.0 is not positive" in plain.value.reason
    frame["adj_close"] = frame["close"].abs()
    with pytest.raises(DataValidationError) as adjusted:
        load_prices(write_csv(tmp_path / "q.csv", frame), min_history_days=MIN)
    assert "close -3.0 must be a positive number" in adjusted.value.reason
    assert "np.float64" not in str(adjusted.value)


# --- tickers and file shapes ---------------------------------------------------------------------


def test_tickers_that_look_like_missing_values_are_tickers(tmp_path: Path) -> None:
    names = ["NA", "NULL", "NAN", "N/A"]
    frame = pd.concat([bars(name) for name in names], ignore_index=True)
    loaded = load_prices(write_csv(tmp_path / "p.csv", frame), min_history_days=MIN)
    assert sorted(loaded["ticker"].unique()) == sorted(names)
    assert len(loaded) == 20

    frame = frame.astype({"ticker": object})
    frame.loc[3, "ticker"] = None  # an empty cell is still a missing ticker
    with pytest.raises(DataValidationError, match="ticker is missing \\(line 5\\)"):
        load_prices(write_csv(tmp_path / "q.csv", frame), min_history_days=MIN)


def test_truncated_gzip_is_named(tmp_path: Path) -> None:
    data = gzip.compress(write_csv(tmp_path / "p.csv", bars(n=200)).read_bytes())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "fake.csv.gz").write_bytes(b"date,ticker\n")
    for name in ("cut.csv.gz", "fake.csv.gz"):
        with pytest.raises(DataValidationError) as caught:
            load_prices(tmp_path / name, min_history_days=MIN)
        assert Path(caught.value.file).name == name
        assert "truncated or corrupt gzip" in caught.value.reason


def test_trailing_comma_on_every_line_is_an_empty_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", bars())
    expected = load_prices(path, min_history_days=MIN)
    header, *rows = path.read_text().splitlines()
    for name, lines in (
        ("rows.csv", [header, *(row + "," for row in rows)]),
        ("all.csv", [header + ",", *(row + "," for row in rows)]),
    ):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        pd.testing.assert_frame_equal(load_prices(tmp_path / name, min_history_days=MIN), expected)

    (tmp_path / "extra.csv").write_text("\n".join([header, rows[0] + ",7", *rows[1:]]) + "\n")
    with pytest.raises(DataValidationError, match="more values than the header"):
        load_prices(tmp_path / "extra.csv", min_history_days=MIN)


def test_symlink_loop_and_broken_link_say_so(tmp_path: Path) -> None:
    loop = tmp_path / "loop.csv"
    os.symlink(loop, loop)
    with pytest.raises(DataValidationError, match="symbolic link loop"):
        load_prices(loop)
    broken = tmp_path / "broken.csv"
    os.symlink(tmp_path / "gone.csv", broken)
    with pytest.raises(DataValidationError, match="broken symbolic link"):
        load_prices(broken)
    folder = tmp_path / "folder"
    folder.mkdir()
    write_csv(folder / "aapl.csv", bars().drop(columns="ticker"))
    os.symlink(folder / "x.csv", folder / "x.csv")
    with pytest.raises(DataValidationError, match="symbolic link loop") as caught:
        load_prices(folder, min_history_days=MIN)
    assert Path(caught.value.file).name == "x.csv"


# --- through Dagster: validation before any write ------------------------------------------------


def _market_csv(path: Path, seed: int = 2) -> pd.DataFrame:
    prices = generate_market(seed=seed, n_tickers=3, years=2, as_of="2026-06-30").prices
    prices.to_csv(path, index=False)
    return prices


def _future_dated(prices: pd.DataFrame) -> pd.DataFrame:
    shifted = prices.copy()
    shifted["date"] = shifted["date"] + pd.DateOffset(years=10)
    return shifted


def _huge(prices: pd.DataFrame) -> pd.DataFrame:
    out = prices.copy()
    out[["open", "high", "low", "close"]] *= 1e298
    return out


def _day_first_text(prices: pd.DataFrame) -> pd.DataFrame:
    return prices.assign(date=prices["date"].dt.strftime("%d/%m/%Y"))


BAD_FILES = {
    "future-dated": (_future_dated, "after today"),
    "1e300 prices": (_huge, "implausibly large"),
    "day-first dates": (_day_first_text, "ambiguous"),
}


def test_bad_file_changes_no_stored_prices_and_registers_nothing(platform_home: Path) -> None:
    good = platform_home.parent / "good.csv"
    prices = _market_csv(good)
    with dg.instance_for_test() as instance:
        ok = build_definitions({"market_data": MarketDataSource(kind="file", path=str(good))})
        assert materialize(ok, instance, "raw_prices", "market_truth").success
        before = instance.fetch_materializations(dg.AssetKey("raw_prices"), limit=1).records
        stored = (platform_home / "io" / "raw_prices").read_bytes()
        tracking_uri = deployed_stores().tracking_uri

        for case, (make_bad, words) in BAD_FILES.items():
            bad = platform_home.parent / "bad.csv"
            make_bad(prices).to_csv(bad, index=False)
            overrides = small_overrides()
            overrides["market_data"] = MarketDataSource(kind="file", path=str(bad))
            result = materialize(
                build_definitions(overrides),
                instance,
                "raw_prices",
                "market_truth",
                "features",
                "labels",
                "tuned_params",
                "staging_model",
            )
            assert not result.success, case
            message = failure_message(result)
            assert "bad.csv" in message and words in message, (case, message)
            assert not result.get_asset_materialization_events(), case
            after = instance.fetch_materializations(dg.AssetKey("raw_prices"), limit=1).records
            assert after[0].storage_id == before[0].storage_id, case
            assert (platform_home / "io" / "raw_prices").read_bytes() == stored, case
            assert MlflowClient(tracking_uri=tracking_uri).search_model_versions() == [], case


def test_features_name_a_ticker_they_drop(platform_home: Path) -> None:
    path = platform_home.parent / "prices.csv"
    prices = generate_market(seed=3, n_tickers=3, years=1, as_of="2026-06-30").prices
    short = prices[prices["ticker"] == prices["ticker"].iloc[0]].tail(15).assign(ticker="SHORT")
    pd.concat([prices, short]).to_csv(path, index=False)
    source = MarketDataSource(kind="file", path=str(path), min_history_days=10)
    with dg.instance_for_test() as instance:
        result = materialize(
            build_definitions({"market_data": source}),
            instance,
            "raw_prices",
            "market_truth",
            "features",
        )
        assert not result.success
        message = failure_message(result)
        assert "ticker SHORT (15 bars;" in message and "SplitError" not in message
        keys = {e.asset_key for e in result.get_asset_materialization_events()}
        assert keys == {dg.AssetKey("raw_prices"), dg.AssetKey("market_truth")}


# --- run config: checked ranges, never retried ---------------------------------------------------


def test_every_run_config_range_is_checked() -> None:
    from mlplatform.orchestration.assets.evaluation import BacktestConfig
    from mlplatform.orchestration.assets.monitoring import DriftConfig
    from mlplatform.orchestration.assets.training import TrainingConfig, TuningConfig

    for make, field in (
        (lambda: BacktestConfig(cost_bps=1e9), "cost_bps"),
        (lambda: BacktestConfig(cost_bps=-1), "cost_bps"),
        (lambda: TuningConfig(n_trials=0), "n_trials"),
        (lambda: TuningConfig(timeout_s=0), "timeout_s"),
        (lambda: TuningConfig(max_tuning_rows=0), "max_tuning_rows"),
        (lambda: TuningConfig(max_tuning_test_rows=-5), "max_tuning_test_rows"),
        (lambda: TuningConfig(seed=-1), "seed"),
        (lambda: TuningConfig(workers=0), "workers"),
        (lambda: TrainingConfig(seed=2**40), "seed"),
        (lambda: TrainingConfig(max_training_rows=10), "max_training_rows"),
        (lambda: DriftConfig(recent_business_days=0), "recent_business_days"),
        (lambda: DriftConfig(sample_rows=1), "sample_rows"),
    ):
        with pytest.raises(dg.Failure) as caught:
            make()
        assert f"{field}=" in caught.value.description
        assert not caught.value.allow_retries
    assert BacktestConfig(cost_bps=1000).cost_bps == 1000
    assert TuningConfig(max_tuning_rows=None).max_tuning_rows is None


def test_bad_run_config_fails_at_once_naming_the_field(platform_home: Path) -> None:
    bad = {
        "tuned_params": ({"max_tuning_rows": 0}, "max_tuning_rows=0"),
        "drift_report": ({"recent_business_days": 0}, "recent_business_days=0"),
    }
    defs = build_definitions(small_overrides())
    with dg.instance_for_test() as instance:
        result = materialize(
            defs,
            instance,
            "raw_prices",
            "market_truth",
            "features",
            "labels",
            *bad,
            run_config={"ops": {asset: {"config": config} for asset, (config, _) in bad.items()}},
        )
    assert not result.success
    message = failure_message(result)
    for _config, field in bad.values():
        assert field in message, message
    assert "Exceeded max_retries" not in message and "max_train_rows" not in message
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried == []
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_prices", "market_truth", "features", "labels"}


def test_optuna_database_removed_mid_study_names_the_storage(tmp_path: Path) -> None:
    from mlplatform.training import StudySpec, TuningError, run_study, walk_forward_folds
    from mlplatform_tests.test_training_tuning import FAST, small_frame

    X, y = small_frame(n_dates=200, n_tickers=4)
    dates = X.index.get_level_values("date").unique()
    folds = walk_forward_folds(dates, n_folds=2, horizon=1, embargo_days=2, min_train_days=100)
    db = tmp_path / "optuna.db"

    def remove_database(_record: object) -> None:  # the fault: someone deletes the file
        db.unlink(missing_ok=True)

    with pytest.raises(TuningError) as caught:
        run_study(
            X,
            y,
            folds,
            StudySpec("gone", f"sqlite:///{db}", n_trials=4, pruner="none", seed=1, **FAST),
            trial_callback=remove_database,
        )
    assert f"storage sqlite:///{db} disappeared while the study ran" in str(caught.value)
    assert "Should not reach" not in str(caught.value)


def test_date_format_from_the_environment_loads_day_first_files(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform import config

    path = platform_home.parent / "prices.csv"
    prices = generate_market(seed=4, n_tickers=2, years=1, as_of="2026-06-30").prices
    _day_first_text(prices).to_csv(path, index=False)
    monkeypatch.setenv(config.DATA_PATH_ENV, str(path))
    monkeypatch.setenv(config.DATE_FORMAT_ENV, "%d/%m/%Y")
    with dg.instance_for_test() as instance:
        result = materialize(build_definitions(), instance, "raw_prices", "market_truth")
        assert result.success
        stored = result.output_for_node("raw_prices", "raw_prices")
    pd.testing.assert_frame_equal(stored, prices)
