"""Dagster resources: where the data comes from, where models and studies are kept, who is told.

Connections and secrets are resources configured with `EnvVar` in definitions.py, so the UI's
Launchpad never shows a secret and a deployment changes stores without code.
"""

import functools
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dagster as dg
import mlflow
import pandas as pd
from dagster_mlflow.resources import CONFIG_SCHEMA as MLFLOW_CONFIG_SCHEMA
from dagster_mlflow.resources import MlFlow
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from pydantic import Field, model_validator

from mlplatform import config
from mlplatform.data import SyntheticMarket, generate_market, load_prices
from mlplatform.features import make_labels
from mlplatform.notifications import (
    Notification,
    format_text,
    post_slack,
    post_webhook,
    redact,
)
from mlplatform.orchestration.errors import FAILED_STEP_TAG
from mlplatform.training import DevBacktestSplit, split_dataset

logger = logging.getLogger("mlplatform")


@dataclass(frozen=True)
class MarketSnapshot:
    prices: pd.DataFrame
    source: str
    prob_up: pd.Series | None = None  # the synthetic market's true P(up); None for real data
    bayes_accuracy: float | None = None


@functools.lru_cache(maxsize=2)
def _synthetic_market(
    seed: int, n_tickers: int, years: int, as_of: str, regime_change: str | None
) -> SyntheticMarket:
    """Deterministic for its arguments, so raw_prices and backtest_report (which needs the true
    P(up)) share one generation per process instead of simulating the market twice."""
    return generate_market(
        seed=seed, n_tickers=n_tickers, years=years, as_of=as_of, regime_change=regime_change
    )


class MarketDataSource(dg.ConfigurableResource):
    """The bars the platform learns from: a synthetic market (default) or the user's files."""

    kind: Literal["synthetic", "file"] = Field(
        default="synthetic", description="'synthetic' or 'file' (CSV/Parquet file or folder)."
    )
    path: str | None = Field(default=None, description="File or folder for kind='file'.")
    price_column: Literal["auto", "close", "adj_close"] = Field(
        default="auto", description="'auto' uses an Adj Close column when present."
    )
    min_history_days: int = Field(default=config.MIN_HISTORY_DAYS, ge=1)
    seed: int = config.SYNTHETIC.seed
    n_tickers: int = Field(default=config.SYNTHETIC.n_tickers, ge=1)
    years: int = Field(default=config.SYNTHETIC.years, ge=1)
    as_of: str | None = Field(default=None, description="Last synthetic bar (YYYY-MM-DD); today.")
    regime_change: str | None = Field(
        default=None, description="Synthetic regime change date (volatility and drift shift)."
    )

    def load(self) -> MarketSnapshot:
        if self.kind == "file":
            if not self.path:
                raise dg.DagsterInvalidConfigError(
                    "MarketDataSource.path is required when kind='file'", [], None
                )
            prices = load_prices(
                Path(self.path),
                price_column=self.price_column,
                min_history_days=self.min_history_days,
            )
            return MarketSnapshot(prices=prices, source=f"file:{self.path}")
        as_of = self.as_of or pd.Timestamp.today().date().isoformat()
        market = _synthetic_market(self.seed, self.n_tickers, self.years, as_of, self.regime_change)
        return MarketSnapshot(
            prices=market.prices,
            source=f"synthetic(seed={self.seed}, tickers={self.n_tickers}, years={self.years})",
            prob_up=market.prob_up,
            bayes_accuracy=float(market.bayes_accuracy),
        )


class PlatformStores(dg.ConfigurableResource):
    """Where the platform keeps things: MLflow registry, Optuna studies, export, reports."""

    tracking_uri: str = Field(description="MLflow tracking and registry URI.")
    optuna_storage: str = Field(description="SQLAlchemy URL of the Optuna study storage.")
    models_dir: str = Field(description="Export for consumers that don't speak MLflow.")
    reports_dir: str = Field(description="HTML reports (backtest, drift).")
    model_name: str = config.MODEL_NAME

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir)

    @property
    def reports_path(self) -> Path:
        path = Path(self.reports_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path


class Notifier(dg.ConfigurableResource):
    """Always a log line; Slack (dagster-slack) with a token; a JSON webhook with a URL."""

    webhook_url: str | None = None
    slack_token: str | None = None
    slack_channel: str = "#mlplatform"

    def send(self, notification: Notification) -> list[str]:
        """Deliver to every configured channel; a failing channel is logged, never raised."""
        delivered = ["log"]
        logger.info("notification %s: %s", notification.kind, format_text(notification))
        secrets = [self.webhook_url, self.slack_token]
        if self.webhook_url:
            try:
                post_webhook(self.webhook_url, notification)
                delivered.append("webhook")
            except Exception as exc:  # a notification must never fail a promotion
                logger.warning(redact(f"webhook notification failed: {exc}", secrets))
        if self.slack_token:
            try:
                from dagster_slack import SlackResource

                client = SlackResource(token=self.slack_token).get_client()
                post_slack(client, self.slack_channel, notification)
                delivered.append("slack")
            except Exception as exc:
                logger.warning(redact(f"slack notification failed: {exc}", secrets))
        return delivered


def ensure_experiment(tracking_uri: str, name: str, artifact_root: Path) -> str:
    """Create the experiment with its artifacts under the home folder (not ./mlruns in the cwd)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(name, artifact_location=artifact_root.as_uri())
    except mlflow.exceptions.MlflowException:  # created concurrently by another step
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
        return experiment.experiment_id


IMPLICIT_ASSET_JOB = "__ASSET_JOB"  # Dagster's job for materializations launched on assets


def mlflow_run_name(run: dg.DagsterRun, shown: int = 3) -> str:
    """What made the MLflow run: the job's name, or the assets a materialization selected."""
    if not run.job_name.startswith(IMPLICIT_ASSET_JOB) or not run.asset_selection:
        return run.job_name
    names = sorted(key.to_user_string() for key in run.asset_selection)
    more = f" +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


@dg.resource(
    config_schema={
        **MLFLOW_CONFIG_SCHEMA,
        "artifact_location": dg.Field(
            dg.StringSource, is_required=False, description="Artifact root for a new experiment."
        ),
    },
    description="dagster-mlflow's tracking; ends its MLflow run whichever way a step ends.",
)
def mlflow_tracking(init_context: dg.InitResourceContext) -> Iterator[MlFlow]:
    """dagster-mlflow's `MlFlow`, plus what its hook cannot do for UI-launched materializations.

    The hook only runs when attached to a job, so an asset materialized from the UI's button would
    leave its MLflow run RUNNING. Here each step ends the run on teardown: FAILED while any step
    of the Dagster run is marked failed (`errors.step_guard` marks and unmarks), else FINISHED. The
    next step of the same Dagster run re-activates the same MLflow run, as dagster-mlflow intends.
    """
    cfg = init_context.resource_config
    tracking_uri = cfg["mlflow_tracking_uri"] or config.mlflow_tracking_uri()
    artifact_root = Path(cfg.get("artifact_location") or config.mlflow_artifact_root())
    ensure_experiment(tracking_uri, cfg["experiment_name"], artifact_root)
    tracker = MlFlow(init_context)
    # dagster-mlflow names every run after the job, `__ASSET_JOB` for a UI materialization.
    mlflow.set_tag(MLFLOW_RUN_NAME, mlflow_run_name(init_context.dagster_run))
    try:
        yield tracker
    finally:
        run = mlflow.active_run()
        if run is not None:
            tags = mlflow.get_run(run.info.run_id).data.tags
            failed = sys.exc_info()[1] is not None or any(
                key.startswith(FAILED_STEP_TAG) for key in tags
            )
            mlflow.end_run(status="FAILED" if failed else "FINISHED")


class ValidationScheme(dg.ConfigurableResource):
    """How every stage splits time: one resource so tuning, training and backtest always agree."""

    horizon: int = Field(default=config.VALIDATION.horizon, ge=1, description="Label horizon.")
    backtest_months: int = Field(
        default=config.VALIDATION.backtest_months,
        ge=1,
        description="Most recent months held out for the backtest; never tuned or trained on.",
    )
    n_folds: int = Field(default=config.VALIDATION.n_folds, ge=2)
    embargo_days: int = Field(default=config.VALIDATION.embargo_days, ge=0)
    min_train_days: int = Field(default=config.VALIDATION.min_train_days, ge=20)

    def split(self, features: pd.DataFrame, prices: pd.DataFrame) -> DevBacktestSplit:
        """Labels for this horizon, and the development / held-out backtest split by date."""
        return split_dataset(
            features,
            make_labels(prices, horizon=self.horizon),
            backtest_months=self.backtest_months,
            horizon=self.horizon,
        )

    @model_validator(mode="after")
    def _horizon_fits_backtest(self) -> "ValidationScheme":
        window_days = self.backtest_months * 21
        if self.horizon >= window_days:
            raise ValueError(
                f"ValidationScheme.horizon={self.horizon} must be shorter than the backtest "
                f"window (backtest_months={self.backtest_months} ≈ {window_days} business days)"
            )
        return self
