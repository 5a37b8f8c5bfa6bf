"""`python -m mlplatform run | promote | rollback` on one home folder, as `make` calls them."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlplatform import config
from mlplatform.cli import main
from mlplatform.data import generate_market
from mlplatform.registry import verify_export


def test_run_promote_rollback_through_the_cli(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_file = platform_home.parent / "prices.csv"
    # A small market with a strong planted signal: the real promotion criteria have the power
    # to pass it at the default validation settings, so promotion needs no override.
    market = generate_market(seed=5, n_tickers=8, years=5, as_of="2026-06-30", signal_strength=0.9)
    market.prices.to_csv(data_file, index=False)
    monkeypatch.setenv(config.DATA_PATH_ENV, str(data_file))
    users_dagster_home = platform_home.parent / "users-dagster-home"
    users_dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(users_dagster_home))  # the CLI must keep it

    assert main(["run", "--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "Every criterion passed" in out and "make promote" in out
    assert any(users_dagster_home.iterdir())  # the run was recorded in the user's instance
    assert not config.dagster_home().exists()

    assert main(["rollback"]) == 1  # nothing in production yet: refused, nothing changes
    assert "rollback refused" in capsys.readouterr().err

    assert main(["promote", "--reason", "first production model"]) == 0
    assert "production is now v1" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri())
    production = client.get_model_version_by_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS)
    assert str(production.version) == "1"
    assert production.tags["promotion_reason"] == "first production model"
    assert (config.models_dir() / "production" / "model.txt").exists()

    assert main(["promote"]) == 0  # promoting the same version again is idempotent

    (config.models_dir() / "production" / "model.txt").write_text("corrupted")
    assert main(["repair"]) == 0  # a damaged export is rewritten to match the alias
    assert "exports rebuilt: production (v1)" in capsys.readouterr().out
    verify_export(config.models_dir() / "production")
