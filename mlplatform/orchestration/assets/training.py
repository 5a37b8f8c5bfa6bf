"""Group `training`: the labels, tuned hyperparameters (Optuna) and the registered staging model
(LightGBM)."""

import math
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import mlflow
import pandas as pd
from dagster_mlflow.resources import MlFlow
from pydantic import Field

from mlplatform import config as settings
from mlplatform.features import LABEL_DEFINITION, feature_schema_hash
from mlplatform.orchestration.errors import STORE_RETRY_POLICY, CheckedConfig, step_guard
from mlplatform.orchestration.metadata import (
    code_version,
    mlflow_artifact_url,
    mlflow_model_url,
    ownership,
    rounded_metadata,
    run_link,
    table_metadata,
)
from mlplatform.orchestration.resources import MarketDataSource, PlatformStores, ValidationScheme
from mlplatform.registry import (
    ModelHandle,
    latest_facts,
    production_params,
    register,
    staging_package,
)
from mlplatform.registry.card import CARD_ARTIFACT, CARD_FILE
from mlplatform.training import (
    BASE_PARAMS,
    SEARCH_SPACE,
    Candidate,
    RowSample,
    StudySpec,
    TrialRecord,
    Windows,
    build_candidate,
)
from mlplatform.training.retrain import (
    StagingModel,
    Tuned,
    TunedParams,
    label_definition,
    study_name,
    tune,
    tuned_recipe,
)
from mlplatform.training.study_report import write_study_report

LABELS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("date", "datetime", description="Row index: the close t of the bar."),
        dg.TableColumn("ticker", "string", description="Row index: the instrument."),
        dg.TableColumn("label", "int8", description="1 when close[t+h] > close[t], else 0."),
        dg.TableColumn(
            "forward_return", "float64", description="close[t+h] / open[t+1] - 1: tradable."
        ),
        dg.TableColumn("hold_return", "float64", description="close[t+h] / close[t] - 1."),
    ]
)


# Its own asset so the one step that looks forward in time is derived once per retrain, not
# once in each of the three steps that read it (about 1 s each at 5 M bars); each of them checks
# that the stored labels fit its features (ValidationScheme.labelled).
@dg.asset(
    group_name="training",
    **ownership("weekly"),
    code_version=code_version(LABEL_DEFINITION),
    metadata={"dagster/column_schema": LABELS_SCHEMA},
    kinds={"pandas"},
    description="What followed each feature row whose bar `horizon` later exists: its label, and "
    "the returns that tuning's Sharpe and the backtest are measured on. The only asset that "
    "looks forward in time.",
)
def labels(
    context: dg.AssetExecutionContext,
    features: pd.DataFrame,
    raw_prices: pd.DataFrame,
    validation: ValidationScheme,
) -> dg.Output[pd.DataFrame]:
    with step_guard(context):  # a market too short for the horizon fails with its reason
        frame = validation.labels(features, raw_prices)
    dates = frame.index.get_level_values("date")
    context.log.info(f"{len(frame)} labelled rows of {len(features)} feature rows")
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "label": label_definition(validation.horizon),
            "horizon": validation.horizon,
            "up_share": round(float(frame["label"].mean()), 4),
            "unlabelled_feature_rows": len(features) - len(frame),
            "first_date": dates.min().date().isoformat(),
            "last_date": dates.max().date().isoformat(),
        },
    )


class TuningConfig(CheckedConfig):
    """Launchpad settings of the Optuna study."""

    n_trials: int = Field(
        default=settings.TUNING.n_trials, ge=1, le=100_000, description="Trials to run (≥ 1)."
    )
    timeout_s: float = Field(
        default=settings.TUNING.timeout_s,
        gt=0,
        le=7 * 24 * 3600,
        description="Study time limit, s.",
    )
    pruner: Literal["median", "hyperband", "none"] = Field(
        default="median", description="Optuna pruner that stops weak trials early."
    )
    seed: int = Field(
        default=settings.TUNING.seed, ge=0, le=2**31 - 1, description="TPE sampler seed."
    )
    warm_start: bool = Field(
        default=True, description="Enqueue the production model's parameters as a first trial."
    )
    max_tuning_rows: int | None = Field(
        default=settings.TUNING.max_tuning_rows,
        ge=1,
        description="Per fold, tune on a seeded ticker subset of at most this many training rows "
        "(staging still trains on all rows); empty = all rows.",
    )
    max_tuning_test_rows: int | None = Field(
        default=settings.TUNING.max_tuning_test_rows,
        ge=1,
        description="Per fold, score on at most this many test rows (same tickers).",
    )
    stop_early: bool = Field(
        default=True,
        description="Stop once the best value has not moved by more than the CV noise for "
        f"{settings.TUNING.stagnation_trials} trials (n_trials stays the limit); false = run "
        "every trial.",
    )
    workers: int = Field(
        default=settings.TUNING.workers,
        ge=1,
        description="Optuna worker processes on the shared study (more than 1 wants a server "
        "storage: Postgres, or journal+redis://).",
    )

    def study(self, stores: PlatformStores, prices: pd.DataFrame, windows: Windows) -> StudySpec:
        """This run's study: named after the model and its development data, in the stores'
        Optuna storage, warm-started from production when asked."""
        rows = RowSample(self.max_tuning_rows, self.max_tuning_test_rows)
        warm = (
            production_params(stores.tracking_uri, stores.model_name) if self.warm_start else None
        )
        return StudySpec(
            name=study_name(stores.model_name, prices, windows.development, rows),
            storage_url=stores.optuna_storage,
            n_trials=self.n_trials,
            timeout_s=self.timeout_s,
            pruner=self.pruner,
            seed=self.seed,
            workers=self.workers,
            warm_start_params=warm,
            rows=rows,
            stagnation_trials=settings.TUNING.stagnation_trials if self.stop_early else None,
        )


class TrainingConfig(CheckedConfig):
    seed: int = Field(
        default=settings.TUNING.seed,
        ge=0,
        le=2**31 - 1,
        description="LightGBM seed (deterministic).",
    )
    max_training_rows: int | None = Field(
        default=settings.TRAINING.max_training_rows,
        ge=1_000,
        description="Each fit (walk-forward block, refit) trains on a seeded sample of at most "
        "this many labelled rows; empty = all rows.",
    )


def _log_trial(record: TrialRecord) -> None:
    """Each trial is an MLflow run nested under the Dagster run's MLflow run."""
    with mlflow.start_run(run_name=f"trial-{record.number:03d}", nested=True):
        mlflow.log_params(record.params)
        mlflow.set_tags({"trial_state": record.state, "trial_number": str(record.number)})
        metrics = {
            "boosting_rounds": float(record.boosting_rounds),
            "duration_s": record.duration_s,
        }
        if record.value is not None:
            metrics["cv_log_loss"] = float(record.value)
        mlflow.log_metrics(metrics)


def _log_tuning(tuned: Tuned) -> None:
    result = tuned.result
    mlflow.log_dict(result.best_params, "best_hyperparameters.json")
    mlflow.log_metrics(
        {
            "tuning_best_cv_log_loss": result.best_value,
            "tuning_default_cv_log_loss": result.default_value,
            "tuning_trials_complete": result.n_complete,
            "tuning_trials_pruned": result.n_pruned,
            "tuning_trials_lost": result.n_lost,
        }
    )
    mlflow.set_tag("tuning_stop_reason", result.stop_reason)


STOP_REASONS = {
    "stagnation": "the best value stopped moving by more than the CV noise",
    "trial_limit": "n_trials reached",
    "time_limit": "timeout_s reached",
    "workers_lost": "workers kept dying (see the run's log)",
}


def _tuning_metadata(tuned: Tuned, run: Any, report: Path) -> dict[str, Any]:
    """Numbers (plotted across retrains, rounded) for the study's outcome; text for the rest."""
    result, windows = tuned.result, tuned.windows
    importances = pd.DataFrame(
        {"importance": pd.Series(result.param_importances, dtype="float64")}
    ).rename_axis("parameter")
    params = pd.DataFrame(
        {
            "value": {
                k: f"{v:.4g}" if isinstance(v, float) else str(v)
                for k, v in result.best_params.items()
            }
        }
    ).rename_axis("parameter")
    # Tuning ranks parameters on a seeded subset of tickers per fold (all their dates); the
    # folds' training windows grow, so their rows overlap: they are listed, not summed.
    folds = pd.DataFrame(
        {
            "training_rows": result.tuning_train_rows,
            "test_rows": result.tuning_test_rows,
            "tickers_sampled": result.tuning_tickers,
        },
        index=pd.RangeIndex(1, len(result.tuning_train_rows) + 1, name="fold"),
    )
    numbers = rounded_metadata(
        {
            "best_cv_log_loss": float(result.best_value),
            "default_params_cv_log_loss": float(result.default_value),
            "improvement_over_default": float(result.default_value - result.best_value),
            "trial_sharpe_sd": tuned.trial_sharpe_sd,
            "cv_noise": float(result.cv_noise),
            "duration_s": float(tuned.duration_s),
        }
    )
    if not math.isfinite(numbers["cv_noise"]):
        numbers["cv_noise"] = dg.MetadataValue.text("not measured (fewer than 2 folds)")
    if not math.isfinite(numbers["trial_sharpe_sd"]):
        numbers["trial_sharpe_sd"] = dg.MetadataValue.text("fewer than 2 complete trials")
    return {
        **numbers,
        "trials": dg.MetadataValue.text(
            f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed "
            f"in this run; {result.n_trials_tried} tried in the study (the Deflated Sharpe's N)"
        ),
        "stopped_because": dg.MetadataValue.text(
            f"{result.stop_reason}: {STOP_REASONS.get(result.stop_reason, '')}"
        ),
        "start_point": dg.MetadataValue.text(result.start_point),
        "workers_lost": dg.MetadataValue.text(
            f"{result.n_lost} trial(s) lost with a dead worker, {result.n_retried} re-run, "
            f"{result.workers_replaced} worker(s) replaced"
        ),
        "study_report": dg.MetadataValue.url(mlflow_artifact_url(run, f"optuna/{report.name}")),
        "study_report_file": dg.MetadataValue.path(str(report)),
        "development_window": str(windows.development),
        "development_rows": dg.MetadataValue.text(f"{result.dev_rows:,} labelled rows"),
        "folds": table_metadata(folds),
        "evaluation_window": str(windows.evaluation),
        "parameter_importances": table_metadata(importances),
        "best_params": table_metadata(params),
        "mlflow_run": run_link(run),
    }


@dg.asset(
    group_name="training",
    **ownership("weekly"),
    code_version=code_version(SEARCH_SPACE, BASE_PARAMS),
    kinds={"optuna", "mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="Hyperparameters from an Optuna study on purged walk-forward folds.",
)
def tuned_params(
    context: dg.AssetExecutionContext,
    config: TuningConfig,
    features: pd.DataFrame,
    labels: pd.DataFrame,
    raw_prices: pd.DataFrame,
    mlflow: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
) -> dg.Output[TunedParams]:
    with step_guard(context):
        data = validation.labelled(features, labels, raw_prices)
        fitted = validation.plan(data)  # the one split of this run; later steps read it
        if fitted.notes:
            context.log.warning(f"windows fitted to a short history: {fitted.describe()}")
        tuned = tune(
            data,
            fitted.windows,
            validation.folds(data, fitted),
            config.study(stores, raw_prices, fitted.windows),
            trial_callback=_log_trial,
        )
        run = mlflow.active_run()
        _log_tuning(tuned)
        report = write_study_report(
            tuned.result.study_name,
            stores.optuna_storage,
            stores.reports_path / f"optuna_{context.run.run_id}.html",
        )
        mlflow.log_artifact(str(report), artifact_path="optuna")
    context.log.info(tuned.summary())
    metadata = {**_tuning_metadata(tuned, run, report), "windows": fitted.describe()}
    return dg.Output(tuned.value(), metadata=metadata)


def _staging_metadata(
    handle: ModelHandle, candidate: Candidate, stores: PlatformStores, run: Any
) -> dict[str, Any]:
    booster = candidate.booster
    gain = pd.DataFrame(
        {"gain": booster.feature_importance("gain")},
        index=pd.Index(booster.feature_name(), name="feature"),
    ).sort_values("gain", ascending=False)
    return {
        "model_version": dg.MetadataValue.url(mlflow_model_url(handle.name, handle.version)),
        "registry_version": int(handle.version),
        # the registry moves a semver another version holds to its next patch
        "semver": handle.semver,
        "uri": handle.uri,
        "training_window": str(candidate.windows.refit),
        "evaluation_window": str(candidate.windows.evaluation),
        "training_rows": candidate.training_rows,
        "walk_forward_blocks": len(candidate.windows.blocks),
        "boosting_rounds": candidate.recipe.num_boost_round,
        "feature_importance_gain": table_metadata(gain),
        "export": dg.MetadataValue.path(str(stores.models_path / "staging")),
        # completed by backtest_report (walk-forward table, criteria) and by a promotion
        "model_card": dg.MetadataValue.path(str(stores.models_path / "staging" / CARD_FILE)),
        "model_card_in_mlflow": dg.MetadataValue.url(mlflow_artifact_url(run, CARD_ARTIFACT)),
        "mlflow_run": run_link(run),
    }


@dg.asset(
    group_name="training",
    **ownership("weekly"),
    code_version=code_version(BASE_PARAMS, feature_schema_hash(), LABEL_DEFINITION),
    kinds={"lightgbm", "mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="The tuned recipe walked forward over the evaluation window (out-of-sample "
    "predictions for backtest_report), then refit on every labelled row up to the latest bar: a "
    "new registry version with alias `staging` and the models/staging export.",
)
def staging_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    features: pd.DataFrame,
    labels: pd.DataFrame,
    raw_prices: pd.DataFrame,
    tuned_params: TunedParams,
    mlflow: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
    market_data: MarketDataSource,
) -> dg.Output[StagingModel]:
    with step_guard(context):
        data = validation.labelled(features, labels, raw_prices)
        recipe = tuned_recipe(
            tuned_params.params,
            tuned_params.num_boost_round,
            seed=config.seed,
            horizon=validation.horizon,
            max_training_rows=config.max_training_rows,
        )
        candidate = build_candidate(recipe, data, tuned_params.windows)
        package = staging_package(
            candidate,
            data,
            raw_prices,
            tuned_params,
            previous=latest_facts(stores.tracking_uri, stores.model_name),
            dagster_run_id=context.run.run_id,
            data_source=market_data.source,
        )
        run = mlflow.active_run()
        mlflow.log_params({f"lgbm_{k}": v for k, v in recipe.params.items()})
        handle = register(stores.registry(), package, run_id=run.info.run_id)
    context.log.info(f"registered {handle.name} v{handle.version} ({handle.semver}) as staging")
    value = StagingModel(
        name=handle.name,
        version=handle.version,
        semver=handle.semver,
        uri=handle.uri,
        run_id=handle.run_id,
        recipe=recipe,
        windows=candidate.windows,
        out_of_sample=candidate.out_of_sample,
    )
    return dg.Output(value, metadata=_staging_metadata(handle, candidate, stores, run))
