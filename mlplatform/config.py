"""The one place for the platform's facts: paths, defaults, thresholds and promotion criteria.

Every other module imports from here instead of repeating a literal. Paths are functions, not
constants, so that an environment variable set by a test or a user takes effect without a
re-import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# --- environment variables -------------------------------------------------------------------
HOME_ENV = "MLPLATFORM_HOME"
MODELS_DIR_ENV = "MLPLATFORM_MODELS_DIR"
DATA_PATH_ENV = "MLPLATFORM_DATA_PATH"
DATE_FORMAT_ENV = "MLPLATFORM_DATE_FORMAT"  # e.g. %d/%m/%Y; unset = ISO or unambiguous
SLACK_TOKEN_ENV = "MLPLATFORM_SLACK_TOKEN"
SLACK_CHANNEL_ENV = "MLPLATFORM_SLACK_CHANNEL"
SLACK_API_URL_ENV = "MLPLATFORM_SLACK_API_URL"  # unset = Slack's; GovSlack, a proxy
SLACK_API_URL_DEFAULT = "https://slack.com/api/"
WEBHOOK_URL_ENV = "MLPLATFORM_WEBHOOK_URL"
MLFLOW_TRACKING_URI_ENV = "MLPLATFORM_MLFLOW_TRACKING_URI"
MLFLOW_ALLOWED_HOSTS_ENV = "MLPLATFORM_MLFLOW_ALLOWED_HOSTS"  # for `mlflow-server`
OPTUNA_STORAGE_ENV = "MLPLATFORM_OPTUNA_STORAGE"
REGISTRY_LOCK_URL_ENV = "MLPLATFORM_REGISTRY_LOCK_URL"  # Postgres URL of the cross-host lock
IO_DIR_ENV = "MLPLATFORM_IO_DIR"  # asset values: a path every step worker can reach
CELERY_BROKER_ENV = "MLPLATFORM_CELERY_BROKER"  # e.g. amqp://guest@127.0.0.1:5672//
CELERY_BACKEND_ENV = "MLPLATFORM_CELERY_BACKEND"  # rpc:// with RabbitMQ, the URL with Redis
PROMOTION_POLICY_ENV = (
    "MLPLATFORM_PROMOTION_POLICY"  # JSON object of thresholds, e.g. {"min_dsr": 0.9}
)
PREDICTIONS_DIR_ENV = "MLPLATFORM_PREDICTIONS_DIR"  # the prediction log: a folder or URL
EXECUTOR_ENV = "MLPLATFORM_EXECUTOR"  # `celery`: the code location's jobs run steps on Celery
RETENTION_KEEP_LAST_ENV = "MLPLATFORM_RETENTION_KEEP_LAST"  # registry versions a prune keeps
RETENTION_KEEP_DAYS_ENV = "MLPLATFORM_RETENTION_KEEP_DAYS"  # and any younger than these days


# --- paths: everything the platform keeps lives under one home folder ------------------------
def home_dir() -> Path:
    """`.mlplatform/` in the project, or MLPLATFORM_HOME."""
    return Path(os.environ.get(HOME_ENV) or PROJECT_ROOT / ".mlplatform").resolve()


def dagster_home() -> Path:
    return home_dir() / "dagster"


def mlflow_dir() -> Path:
    return home_dir() / "mlflow"


def mlflow_tracking_uri() -> str:
    """The home folder's SQLite store, or MLPLATFORM_MLFLOW_TRACKING_URI (an MLflow server)."""
    return os.environ.get(MLFLOW_TRACKING_URI_ENV) or f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


def mlflow_artifact_root() -> Path:
    return mlflow_dir() / "artifacts"


def optuna_storage_url() -> str:
    """The home folder's SQLite file, or MLPLATFORM_OPTUNA_STORAGE (any SQLAlchemy URL)."""
    return os.environ.get(OPTUNA_STORAGE_ENV) or f"sqlite:///{home_dir() / 'optuna' / 'studies.db'}"


def with_psycopg2(url: str) -> str:
    """A Postgres SQLAlchemy URL that names the installed driver: SQLAlchemy 2.1 maps a bare
    `postgresql://` to psycopg 3, while the dependencies (dagster-postgres) bring psycopg2."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def _postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres://"))


def registry_lock_env() -> str | None:
    """The variable whose Postgres URL the cross-host registry lock uses: the explicit
    MLPLATFORM_REGISTRY_LOCK_URL, else a store the platform already has on Postgres (the
    MLflow backend, the Optuna storage); None = none set (one host: the file lock suffices)."""
    for name in (REGISTRY_LOCK_URL_ENV, MLFLOW_TRACKING_URI_ENV, OPTUNA_STORAGE_ENV):
        value = os.environ.get(name, "")
        if (name == REGISTRY_LOCK_URL_ENV and value) or _postgres(value):
            return name
    return None


def registry_lock_url() -> str | None:
    """The URL of the cross-host registry lock (see registry_lock_env), or None."""
    name = registry_lock_env()
    return None if name is None else os.environ[name]


def io_dir() -> Path:
    """Asset values: the home folder's io/ on one machine, MLPLATFORM_IO_DIR (shared) otherwise."""
    return Path(os.environ.get(IO_DIR_ENV) or home_dir() / "io")


def predictions_dir() -> str:
    """The prediction log (Parquet per date): predictions/ in the home folder, or
    MLPLATFORM_PREDICTIONS_DIR (a folder or an object-store URL other tools read)."""
    return os.environ.get(PREDICTIONS_DIR_ENV) or str(home_dir() / "predictions")


# The first trading date the predictions asset offers (a backfill may start here).
PREDICTIONS_START = "2024-01-01"


def reports_dir() -> Path:
    return home_dir() / "reports"


def models_dir() -> Path:
    """The export for consumers that don't speak MLflow: `models/` or MLPLATFORM_MODELS_DIR."""
    return Path(os.environ.get(MODELS_DIR_ENV) or PROJECT_ROOT / "models").resolve()


MLFLOW_UI_URL_ENV = "MLPLATFORM_MLFLOW_UI_URL"


def mlflow_ui_url() -> str:
    """Where `make mlflow-ui` serves the MLflow UI; links in Dagster metadata point here."""
    return os.environ.get(MLFLOW_UI_URL_ENV, "http://127.0.0.1:5000").rstrip("/")


# --- names -------------------------------------------------------------------------------------
MODEL_NAME = "mlplatform-direction"
EXPERIMENT_NAME = "mlplatform"
STAGING_ALIAS = "staging"
PRODUCTION_ALIAS = "production"
ARCHIVED_TAG = "archived"
ASSET_OWNERS = ("team:ml-platform",)  # shown on every asset in the Dagster UI


# --- data --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticDefaults:
    seed: int = 42
    # Breadth and history give the walk-forward evaluation its power: on 30 tickers x 10 years
    # with a 36-month window the gate passes a near-Bayes-optimal model and refuses a market with
    # no signal (benchmarks/bench_gate.py); 20 x 8 with 24 months missed the DSR on half the seeds.
    n_tickers: int = 30
    years: int = 10


SYNTHETIC = SyntheticDefaults()
MIN_HISTORY_DAYS = 126  # six months of business days per ticker
STALE_AFTER_BUSINESS_DAYS = 5
EXTREME_RETURN_ABS = 0.5  # a 50 % one-day move is flagged (warning)
MAX_GAP_BUSINESS_DAYS = 5
# Bars beyond these are refused at load: features square prices and volumes (rolling variance)
# and are kept as float32, so values near 1e300 overflow and the ticker silently drops out.
MAX_PRICE = 1e12
MAX_VOLUME = 1e18
# High/low may sit this far (relative) on the wrong side of open/close: float32 rounding noise.
OHLC_REL_TOLERANCE = 1e-6


# --- labels, validation splits, tuning ----------------------------------------------------------
@dataclass(frozen=True)
class ValidationDefaults:
    horizon: int = 1  # bars ahead the label looks
    # The recipe is scored by walk-forward over the most recent evaluation_months (never tuned
    # on), refit every refit_months; 36 months give the date-level test and the Deflated Sharpe
    # their power at the default market (benchmarks/bench_gate.py).
    evaluation_months: int = 36
    refit_months: int = 3
    n_folds: int = 4
    embargo_days: int = 5
    min_train_days: int = 252


VALIDATION = ValidationDefaults()


@dataclass(frozen=True)
class TuningDefaults:
    n_trials: int = 50
    timeout_s: float = 3600.0
    pruner: str = "median"  # "median" | "hyperband" | "none"
    seed: int = 42
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    pruner_startup_trials: int = 5  # median pruner: complete trials before any pruning
    pruner_warmup_steps: int = 20  # median pruner: boosting rounds before a trial may be pruned
    heartbeat_interval_s: int = 60  # RDB heartbeat: trials of crashed workers are failed
    failed_trial_retries: int = 2  # a lost trial (dead worker, stale heartbeat) is re-run so often
    workers: int = 1  # Optuna worker processes on one study (more need a server storage)
    # A launch starts at most this many workers in place of dead ones: a crash loop (every trial
    # killed by the OOM killer) ends with what finished instead of spinning.
    max_worker_replacements: int = 4
    # Stop once the best CV log loss moved by less than one CV standard error over this many
    # finished trials; n_trials and timeout_s stay upper limits (benchmarks/bench_tuning.py).
    stagnation_trials: int | None = 8
    launch_lock_namespace: int = 0x6F7074  # 'opt': first key of the Postgres advisory lock
    # Tuning trains each fold on a seeded subset of tickers (all their dates) of at most this many
    # rows, and scores it on at most max_tuning_test_rows rows of the same tickers; the staging
    # model still trains on every dev row. None = all rows. 500 tickers x 10 years: about 29 s ->
    # 2-3 s per trial, 50 trials in 2 minutes instead of 25 (benchmarks/bench_pipeline.py).
    max_tuning_rows: int | None = 100_000
    max_tuning_test_rows: int | None = 50_000


TUNING = TuningDefaults()


@dataclass(frozen=True)
class TrainingDefaults:
    # Every fit of the recipe (each walk-forward block and the refit) trains on one seeded uniform
    # sample of at most this many labelled rows; None = all rows. At 2,000 tickers (5.1 M rows)
    # the walk-forward's accuracy is the same from 250 k rows up (0.5557 at 250 k, 0.5554 at 1 M,
    # 0.5557 on all) while each fit's time grows with the rows (benchmarks/bench_training_rows.py);
    # 1 M leaves room for real markets, whose signal is weaker than the synthetic one.
    max_training_rows: int | None = 1_000_000


TRAINING = TrainingDefaults()
PRUNERS = ("median", "hyperband", "none")


# --- backtest and promotion criteria ----------------------------------------------------------
@dataclass(frozen=True)
class BacktestDefaults:
    cost_bps: float = 5.0  # one-way transaction cost in basis points
    max_cost_bps: float = 1000.0  # 10 % per trade: anything above is a typo, not a cost
    periods_per_year: int = 252


BACKTEST = BacktestDefaults()


@dataclass(frozen=True)
class SliceDefaults:
    # A slice (a year, a volatility regime, a ticker group) shows figures only from this size on:
    # an accuracy's standard error is about 0.5/sqrt(rows) and rows of one date move together,
    # so under 2,000 rows or 60 dates an edge of a point or two is noise (evaluation.slices).
    min_rows: int = 2_000
    min_dates: int = 60
    regime_window: int = 20  # bars of the market's realised volatility (the regime)


SLICES = SliceDefaults()


ARCHIVE_RETENTION = 10  # archived exports kept on disk (a prune never removes their versions)
# A prune keeps the last 10 registrations and every version younger than 90 days (about 13
# weekly retrains), besides production, the previous production, staging and archived ones.
RETENTION_KEEP_LAST = 10
RETENTION_KEEP_DAYS = 90
PROMOTION_LOCK_TIMEOUT_S = 120.0  # wait this long for models/.lock before refusing
MAX_REASON_CHARS = 1_000  # promotion/rollback reasons are MLflow tags; refused above this
MAX_ACTOR_CHARS = 200
REGISTRY_LOCK_NAMESPACE = 0x6D6C70  # 'mlp': first key of the Postgres advisory lock


# --- drift --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftDefaults:
    psi_threshold: float = 0.2  # a feature with PSI at or above this has drifted
    # Retrain when half the features drifted: slow features (MACD, 63-day vol) differ from a
    # multi-year reference in any 20-day window by PSI 0.2+, so a third drifts with no regime change
    # (measured: 16-32 % before a synthetic regime change, 64 % after).
    drift_share: float = 0.5
    recent_business_days: int = 20
    n_bins: int = 10
    evidently_sample_rows: int = 20_000
    sensor_interval_s: int = 30  # drift reacts within a minute of new data
    cooldown_hours: float = 24.0


DRIFT = DriftDefaults()


# --- automation ---------------------------------------------------------------------------------
WEEKLY_RETRAIN_CRON = "0 2 * * 0"  # Sundays 02:00 UTC
WEEKLY_PRUNE_CRON = "0 5 * * 0"  # Sundays 05:00 UTC, after the retrain
DAILY_REFRESH_CRON = "30 22 * * 1-5"  # after the US close, UTC
SCHEDULE_TIMEZONE = "UTC"
