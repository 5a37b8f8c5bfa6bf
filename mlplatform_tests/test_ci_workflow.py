"""The GitHub Actions workflow the NFR-010 plan asked for: parsed, and its command run locally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from mlplatform import config
from mlplatform.data import generate_market

WORKFLOW = config.PROJECT_ROOT / ".github" / "workflows" / "train-model.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_schedule_matches_the_dagster_schedule() -> None:
    workflow = _workflow()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["schedule"] == [{"cron": config.WEEKLY_RETRAIN_CRON}]
    assert "workflow_dispatch" in triggers
    steps = workflow["jobs"]["retrain"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"].rstrip("/").endswith("reports")


def test_workflow_retrain_step_runs_locally_on_small_data(tmp_path: Path) -> None:
    steps = _workflow()["jobs"]["retrain"]["steps"]
    command = next(s for s in steps if s.get("name") == "Retrain")["run"]
    assert "python -m mlplatform run" in command
    local = command.replace(".venv/bin/python", sys.executable)
    # five years: the default evaluation window (36 months) plus the minimum to tune on
    prices = generate_market(seed=5, n_tickers=6, years=5, as_of="2026-06-30").prices
    data_file = tmp_path / "prices.csv"
    prices.to_csv(data_file, index=False)
    env = {
        **os.environ,
        config.HOME_ENV: str(tmp_path / "home"),
        config.MODELS_DIR_ENV: str(tmp_path / "models"),
        config.DATA_PATH_ENV: str(data_file),
        "TRIALS": "3",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    env.pop(config.WEBHOOK_URL_ENV, None)
    env.pop(config.SLACK_TOKEN_ENV, None)
    env.pop("DAGSTER_HOME", None)  # an in-process CLI test may have pointed it at its own home
    done = subprocess.run(
        ["bash", "-c", local],
        cwd=config.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Promotion criteria" in done.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert "### Walk-forward evaluation (out of sample)" in summary
    assert "| beats_majority_class |" in summary
    assert "**Ready for review.**" in summary or "**Not promotable**" in summary
    reports = list((tmp_path / "home" / "reports").glob("backtest_*.html"))
    assert reports, "the artifact the workflow uploads was not written"
    assert (tmp_path / "models" / "staging" / "SHA256SUMS").exists()


def test_workflow_says_plainly_when_the_store_secrets_are_absent() -> None:
    workflow = _workflow()
    env = workflow["jobs"]["retrain"]["env"]
    for name in (config.MLFLOW_TRACKING_URI_ENV, config.OPTUNA_STORAGE_ENV):
        assert env[name] == "${{ secrets." + name + " }}"
    step = next(s for s in workflow["jobs"]["retrain"]["steps"] if s.get("name") == "Stores")

    def run(**stores: str) -> str:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")}
        done = subprocess.run(
            ["bash", "-c", step["run"]],
            env={**clean, **stores},
            capture_output=True,
            text=True,
            cwd=config.PROJECT_ROOT,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    absent = run(**{config.MLFLOW_TRACKING_URI_ENV: "http://mlflow.internal"})
    assert "::warning title=Throwaway registry::" in absent
    assert config.OPTUNA_STORAGE_ENV in absent and config.MLFLOW_TRACKING_URI_ENV not in absent
    present = run(
        **{
            config.MLFLOW_TRACKING_URI_ENV: "http://mlflow.internal",
            config.OPTUNA_STORAGE_ENV: "postgresql+psycopg2://u:secret@db/optuna",
        }
    )
    assert "Throwaway registry" not in present and "secret@" not in present


def test_workflow_trains_on_the_teams_dagster_instance_when_given(tmp_path: Path) -> None:
    """With the instance's secrets the retrain records its checks where the team's gate reads."""
    workflow = _workflow()
    env = workflow["jobs"]["retrain"]["env"]
    for name in ("MLPLATFORM_PG_HOST", "MLPLATFORM_PG_USER", "MLPLATFORM_PG_DB"):
        assert env[name] == "${{ secrets." + name + " }}"
    step = next(s for s in workflow["jobs"]["retrain"]["steps"] if s.get("name") == "Stores")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")}
    github = {"GITHUB_WORKSPACE": str(tmp_path), "GITHUB_ENV": str(tmp_path / "github_env")}

    def run(**given: str) -> str:
        done = subprocess.run(
            ["bash", "-c", step["run"]],
            env={**clean, **github, **given},
            capture_output=True,
            text=True,
            cwd=config.PROJECT_ROOT,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "::warning title=Runner-local Dagster::" in run()
    assert not (tmp_path / ".dagster").exists()
    told = run(MLPLATFORM_PG_HOST="db.internal")
    assert "the team's instance" in told
    installed = tmp_path / ".dagster" / "dagster.yaml"
    deployed = config.PROJECT_ROOT / "deploy" / "dagster-postgres.yaml"
    assert installed.read_text() == deployed.read_text()
    assert f"DAGSTER_HOME={tmp_path / '.dagster'}" in (tmp_path / "github_env").read_text()
