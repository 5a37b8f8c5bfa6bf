"""Dagster resources: where the data comes from, where models and studies are kept, who is told.

Connections and secrets are resources configured with `EnvVar` in definitions.py, so the UI's
Launchpad never shows a secret and a deployment changes stores without code.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import dagster as dg
import mlflow
import pandas as pd
from dagster_mlflow.resources import CONFIG_SCHEMA as MLFLOW_CONFIG_SCHEMA
from dagster_mlflow.resources import MlFlow
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from pydantic import Field, model_validator

from mlplatform import config
from mlplatform.data import generate_market, load_prices
from mlplatform.data.synthetic import DEFAULT_SIGNAL_STRENGTH, MAX_TICKERS
from mlplatform.features import outcomes
from mlplatform.notifications import Notification, Targets, deliver
from mlplatform.registry import Registry, owner_tags
from mlplatform.training import Fold, LabelledData, labelled_rows, walk_forward_folds
from mlplatform.training.history import FittedWindows, fit_windows


@dataclass(frozen=True)
class MarketSnapshot:
    prices: pd.DataFrame
    source: str
    prob_up: pd.Series | None = None  # the synthetic market's true P(up); None for real data
    bayes_accuracy: float | None = None


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
    n_tickers: int = Field(default=config.SYNTHETIC.n_tickers, ge=1, le=MAX_TICKERS)
    years: int = Field(default=config.SYNTHETIC.years, ge=1)
    date_format: str | None = Field(
        default=None,
        description="Date column format of the files, e.g. '%d/%m/%Y'; empty = ISO 8601 or "
        "unambiguous dates only (04/01/2015 is refused).",
    )
    as_of: str | None = Field(
        default=None,
        description="Last synthetic bar, and the latest date a file's bar may carry "
        "(YYYY-MM-DD); empty = today.",
    )
    regime_change: str | None = Field(
        default=None, description="Synthetic regime change date (volatility and drift shift)."
    )
    signal_strength: float = Field(
        default=DEFAULT_SIGNAL_STRENGTH,
        ge=0,
        le=3,
        description="Synthetic planted signal (0 = a market nothing can predict).",
    )

    @property
    def source(self) -> str:
        """Where the bars come from, in words (the model card's and raw_prices' `source`)."""
        if self.kind == "file":
            return f"file:{self.path}"
        return (
            f"synthetic(seed={self.seed}, tickers={self.n_tickers}, years={self.years}, "
            f"signal={self.signal_strength})"
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
                date_format=self.date_format,
                as_of=self.as_of,
            )
            return MarketSnapshot(prices=prices, source=self.source)
        as_of = self.as_of or pd.Timestamp.today().date().isoformat()
        market = generate_market(
            seed=self.seed,
            n_tickers=self.n_tickers,
            years=self.years,
            as_of=as_of,
            regime_change=self.regime_change,
            signal_strength=self.signal_strength,
        )
        return MarketSnapshot(
            prices=market.prices,
            source=self.source,
            prob_up=market.prob_up,
            bayes_accuracy=float(market.bayes_accuracy),
        )


class PlatformStores(dg.ConfigurableResource):
    """Where the platform keeps things: MLflow registry, Optuna studies, export, reports."""

    tracking_uri: str = Field(description="MLflow tracking and registry URI.")
    optuna_storage: str = Field(description="SQLAlchemy URL of the Optuna study storage.")
    models_dir: str = Field(description="Export for consumers that don't speak MLflow.")
    reports_dir: str = Field(description="HTML reports (backtest, drift).")
    predictions_dir: str = Field(description="The prediction log: a folder or object-store URL.")
    model_name: str = config.MODEL_NAME
    registry_lock_url: str | None = Field(
        default=None, description="Postgres URL of the cross-host registry lock (None: one host)."
    )

    def registry(self) -> Registry:
        """The registry and export every registry operation works on (each takes the lock), and
        where a version's studies and reports are (a prune removes them with it)."""
        return Registry(
            tracking_uri=self.tracking_uri,
            export_root=self.models_path,
            name=self.model_name,
            lock_url=self.registry_lock_url,
            optuna_storage=self.optuna_storage,
            reports_dir=Path(self.reports_dir),
        )

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
    """Always a log line; Slack with a token; a JSON webhook with a URL (notifications.deliver)."""

    webhook_url: str | None = None
    slack_token: str | None = None
    slack_channel: str = "#mlplatform"
    slack_api_url: str = config.SLACK_API_URL_DEFAULT

    def send(self, notification: Notification) -> list[str]:
        """Deliver to every configured channel; a failing channel is logged, never raised."""
        targets = Targets(
            webhook_url=self.webhook_url,
            slack_token=self.slack_token,
            slack_channel=self.slack_channel,
            slack_api_url=self.slack_api_url,
        )
        return deliver(notification, targets)


# MLflow 3's UI opens an experiment of no kind on its GenAI pages (traces, token costs): this
# experiment tag makes it open on the training runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(tracking_uri: str, name: str, artifact_root: Path) -> str:
    """Create the experiment with its artifacts under the home folder (not ./mlruns in the cwd).

    A tracking server decides its own artifact root (`mlflow-artifacts:` with proxied artifacts):
    a client-local folder would keep the artifacts away from every other host.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if not tracking_uri.startswith(("http://", "https://")):
            artifact_root.mkdir(parents=True, exist_ok=True)
            location = artifact_root.as_uri()
        try:
            client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:
            if client.get_experiment_by_name(name) is None:  # not made by another step meanwhile:
                raise  # the store refused the write (read-only, locked): say so
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:  # an experiment made before the kind was set
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


IMPLICIT_ASSET_JOB = "__ASSET_JOB"  # Dagster's job for materializations launched on assets


def mlflow_run_name(run: dg.DagsterRun, shown: int = 3) -> str:
    """What made the MLflow run: the job's name, or the assets a materialization selected."""
    if not run.job_name.startswith(IMPLICIT_ASSET_JOB) or not run.asset_selection:
        return run.job_name
    names = sorted(key.to_user_string() for key in run.asset_selection)
    more = f" +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _end_runs_of_other_dagster_runs(context: dg.InitResourceContext) -> None:
    """A process that executes several Dagster runs one after another (tests, in-process
    launches) keeps MLflow's active run between them; one an earlier run left open (its hook
    never ran: the run died in a resource, or its last step logs nothing) is ended with the
    status its Dagster run ended with, so this run gets its own."""
    while (active := mlflow.active_run()) is not None:
        owner = active.data.tags.get("dagster_run_id")
        if context.run is not None and owner == context.run.run_id:
            return
        dagster_run = context.instance.get_run_by_id(owner) if owner and context.instance else None
        failed = dagster_run is None or dagster_run.status != dg.DagsterRunStatus.SUCCESS
        mlflow.end_run(status="FAILED" if failed else "FINISHED")


@dg.resource(
    config_schema={
        **MLFLOW_CONFIG_SCHEMA,
        "artifact_location": dg.Field(
            dg.StringSource, is_required=False, description="Artifact root for a new experiment."
        ),
    },
    description="dagster-mlflow's MLflow run, one per Dagster run; ended by its hook "
    "(end_mlflow_on_run_finished) on every asset and check that logs to it.",
)
def mlflow_tracking(init_context: dg.InitResourceContext) -> MlFlow:
    """dagster-mlflow's `MlFlow`, in an experiment whose artifacts live under the home folder (or
    on the tracking server), opening on training runs, named after what launched it and tagged
    with its process, so the next registry command can tell when that process died."""
    cfg = init_context.resource_config
    tracking_uri = cfg["mlflow_tracking_uri"] or config.mlflow_tracking_uri()
    artifact_root = Path(cfg.get("artifact_location") or config.mlflow_artifact_root())
    ensure_experiment(tracking_uri, cfg["experiment_name"], artifact_root)
    _end_runs_of_other_dagster_runs(init_context)
    tracker = MlFlow(init_context)
    mlflow.set_tags(owner_tags())
    # dagster-mlflow names every run after the job, `__ASSET_JOB` for a UI materialization.
    if init_context.run is not None:
        mlflow.set_tag(MLFLOW_RUN_NAME, mlflow_run_name(init_context.run))
    return tracker


class ValidationScheme(dg.ConfigurableResource):
    """How every stage splits time: one resource so tuning, training and evaluation agree."""

    horizon: int = Field(
        default=config.VALIDATION.horizon, ge=1, le=63, description="Label horizon."
    )
    evaluation_months: int = Field(
        default=config.VALIDATION.evaluation_months,
        ge=1,
        le=240,
        description="Most recent months on which the recipe is scored by walk-forward; never "
        "tuned on.",
    )
    refit_months: int = Field(
        default=config.VALIDATION.refit_months,
        ge=1,
        le=240,
        description="Walk-forward cadence: each block of this many months is predicted by a "
        "model trained only before it.",
    )
    n_folds: int = Field(default=config.VALIDATION.n_folds, ge=2, le=50)
    embargo_days: int = Field(default=config.VALIDATION.embargo_days, ge=0, le=252)
    min_train_days: int = Field(default=config.VALIDATION.min_train_days, ge=20)

    def _made_from(self, features: pd.DataFrame) -> dict[str, object]:
        """What a labels frame must have been made from to serve these features."""
        last = features.index[-1] if len(features) else ()
        return {
            "horizon": self.horizon,
            "feature_rows": len(features),
            "last_feature_row": " ".join(
                str(v.date()) if isinstance(v, pd.Timestamp) else str(v) for v in last
            ),
        }

    def labels(self, features: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
        """The label and the returns after every feature row whose bar `horizon` later exists,
        on the features' rows, with what they were made from in `attrs` (the labels asset)."""
        rows = features.iloc[:, :0]  # the index alone: no copy of the matrix when rows drop out
        frame = labelled_rows(rows, outcomes(prices, horizon=self.horizon)).outcome_frame()
        frame.attrs.update(self._made_from(features))
        return frame

    def labelled(
        self, features: pd.DataFrame, labels: pd.DataFrame, prices: pd.DataFrame
    ) -> LabelledData:
        """The feature rows with their labels: the labels asset's when it was made from these
        features for this horizon, else derived again from the bars (a step materialized alone
        after a data refresh, or another horizon), so a stale labels asset never trains."""
        wanted = self._made_from(features)
        made = {key: labels.attrs.get(key) for key in wanted}
        if made == wanted:
            return labelled_rows(features, labels)
        dg.get_dagster_logger().warning(
            f"the stored labels were made for horizon {made['horizon']} from "
            f"{made['feature_rows']} feature rows up to {made['last_feature_row']}; this step has "
            f"horizon {self.horizon} (the `validation` resource) and {len(features)} feature rows "
            f"up to {wanted['last_feature_row']}: labels derived again from raw_prices "
            "(materialize labels, as retrain_job does, to store them)"
        )
        return labelled_rows(features, outcomes(prices, horizon=self.horizon))

    def plan(self, data: LabelledData) -> FittedWindows:
        """This run's windows: as configured, or shortened to fit a short history."""
        return fit_windows(
            data.dates.unique(),
            evaluation_months=self.evaluation_months,
            refit_months=self.refit_months,
            horizon=self.horizon,
            n_folds=self.n_folds,
            min_train_days=self.min_train_days,
        )

    def folds(self, data: LabelledData, fitted: FittedWindows) -> list[Fold]:
        """Tuning's purged walk-forward folds over the development window."""
        return walk_forward_folds(
            data.within(fitted.windows.development).dates.unique(),
            n_folds=self.n_folds,
            horizon=self.horizon,
            embargo_days=self.embargo_days,
            min_train_days=fitted.min_train_days,
        )

    @model_validator(mode="after")
    def _horizon_fits_blocks(self) -> "ValidationScheme":
        block_days = self.refit_months * 21
        if self.horizon >= block_days:
            raise ValueError(
                f"ValidationScheme.horizon={self.horizon} must be shorter than a walk-forward "
                f"block (refit_months={self.refit_months} ≈ {block_days} business days)"
            )
        return self


def _shown(value: object) -> str:
    """A setting as the UI may show it: an environment variable by its name, never its value."""
    return f"${value.env_var_name}" if isinstance(value, dg.EnvVar) else repr(value)


R = TypeVar("R", dg.ConfigurableResource, dg.ConfigurableIOManagerFactory)


def _resolved(resource: R) -> R:
    """The resource with its EnvVar fields read from this process's environment."""
    values = {
        name: value.get_value() if isinstance(value, dg.EnvVar) else value
        for name, value in dict(resource).items()
    }
    return type(resource)(**values)


def _io_manager(resource: dg.ConfigurableResource) -> dg.IOManager:
    assert isinstance(resource, dg.IOManager)  # a ConfigurableIOManager resolves to itself
    return resource


def fixed(resource: object, summary: str | None = None) -> dg.ResourceDefinition:
    """`resource` exactly as the deployment built it. Its config schema is empty, so run config
    (the Launchpad's included) that tries to change where data is read or written, which store
    is used or what the gate accepts is refused at launch, before any step runs. The UI shows
    the settings in the description; environment variables by name only."""
    if isinstance(
        resource,
        dg.ConfigurableResource | dg.ConfigurableIOManagerFactory | dg.ConfigurableIOManager,
    ):
        settings = ", ".join(f"{k}={_shown(v)}" for k, v in dict(resource).items())
        doc = (type(resource).__doc__ or "").strip().splitlines()[0]
        description = f"{doc} Fixed by the deployment: {summary or settings}"
        if isinstance(resource, dg.ConfigurableIOManagerFactory):
            return dg.IOManagerDefinition(
                resource_fn=lambda context: _resolved(resource).create_io_manager(context),
                config_schema={},
                description=description,
            )
        if isinstance(resource, dg.ConfigurableIOManager):
            return dg.IOManagerDefinition(
                resource_fn=lambda _context: _io_manager(_resolved(resource)),
                config_schema={},
                description=description,
            )
        return dg.ResourceDefinition(
            resource_fn=lambda _context: _resolved(resource),
            config_schema={},
            description=description,
        )
    if isinstance(resource, dg.ResourceDefinition):  # built frozen already (see definitions)
        return resource
    doc = (type(resource).__doc__ or "").strip().splitlines()[0]
    return dg.ResourceDefinition(
        resource_fn=lambda _context: resource,
        config_schema={},
        description=f"{doc} Fixed by the deployment: {summary or resource}",
    )
