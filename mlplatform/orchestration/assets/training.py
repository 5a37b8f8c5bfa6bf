"""Group `training`: tuned hyperparameters (Optuna) and the registered staging model (LightGBM)."""

import dataclasses
import json
import math
import time
from typing import Any, Literal

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_mlflow.resources import MlFlow
from pydantic import Field

from mlplatform import config as settings
from mlplatform.data import fingerprint
from mlplatform.features import LABEL_DEFINITION, feature_schema_hash, forward_returns
from mlplatform.monitoring import model_reference
from mlplatform.orchestration.errors import STORE_RETRY_POLICY, CheckedConfig, step_guard
from mlplatform.orchestration.metadata import mlflow_model_url, ownership, run_link, table_metadata
from mlplatform.orchestration.resources import PlatformStores, ValidationScheme
from mlplatform.registry import (
    get_alias_version,
    latest_version,
    register_candidate,
    version_facts,
)
from mlplatform.training import (
    BASE_PARAMS,
    Recipe,
    TrialRecord,
    VersionFacts,
    Windows,
    build_candidate,
    next_version,
    recipe_tags,
    run_study,
    validate_tuning_args,
    walk_forward_folds,
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
    workers: int = Field(
        default=settings.TUNING.workers,
        description="Optuna worker processes on the shared study (more than 1 wants a server "
        "storage: Postgres, or journal+redis://).",
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


def label_definition(horizon: int) -> str:
    return f"{LABEL_DEFINITION} [horizon={horizon}]"


def _production_params(stores: PlatformStores) -> dict[str, Any] | None:
    version = get_alias_version(stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS)
    if version is None or "params" not in version.tags:
        return None
    return json.loads(version.tags["params"])


MAX_TAGGED_SHARPES = 400  # keeps the tag under MLflow's 5000-character limit


def sharpe_summary(values: list[float]) -> list[float]:
    """The trials' Sharpes for a registry tag: all of them, or evenly spaced quantiles of many
    (their dispersion, which is what the Deflated Sharpe Ratio uses, is kept)."""
    finite = np.sort(np.asarray([v for v in values if np.isfinite(v)], dtype=float))
    if len(finite) > MAX_TAGGED_SHARPES:
        finite = np.quantile(finite, np.linspace(0.0, 1.0, MAX_TAGGED_SHARPES))
    return [round(float(v), 6) for v in finite]


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


@dg.asset(
    group_name="training",
    **ownership("weekly"),
    kinds={"optuna", "mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="Hyperparameters from an Optuna study on purged walk-forward folds.",
)
def tuned_params(
    context: dg.AssetExecutionContext,
    config: TuningConfig,
    features: pd.DataFrame,
    raw_prices: pd.DataFrame,
    mlflow_tracking: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
) -> dg.Output[dict]:
    with step_guard(context):
        validate_tuning_args(
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            pruner=config.pruner,
            workers=config.workers,
        )
        data = validation.labelled(features, raw_prices)
        windows = validation.plan(data)  # the one split of this run; later steps read it
        dev = data.within(windows.development)
        folds = walk_forward_folds(
            dev.dates.unique(),
            n_folds=validation.n_folds,
            horizon=validation.horizon,
            embargo_days=validation.embargo_days,
            min_train_days=validation.min_train_days,
        )
        warm_start = _production_params(stores) if config.warm_start else None
        # One resumable study per model and development data: trial values on other data are not
        # comparable, so a retrain on new bars starts a new study, warm-started from production.
        dev_prices = raw_prices[raw_prices["date"] <= pd.Timestamp(windows.development.end)]
        study_name = f"{stores.model_name}:{fingerprint(dev_prices)[:12]}"
        if config.max_tuning_rows is not None or config.max_tuning_test_rows is not None:
            # Trials on another row sample are not comparable either: one study per sample.
            study_name += f":rows{config.max_tuning_rows}x{config.max_tuning_test_rows}"
        started = time.perf_counter()
        result = run_study(
            dev.X,
            dev.y,
            folds,
            study_name=study_name,
            storage_url=stores.optuna_storage,
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            pruner=config.pruner,
            seed=config.seed,
            warm_start_params=warm_start,
            trial_callback=_log_trial,
            max_train_rows=config.max_tuning_rows,
            max_test_rows=config.max_tuning_test_rows,
            workers=config.workers,
            # Each trial's out-of-fold long/short Sharpe (tuning folds only, never the backtest
            # window): their dispersion is the V[SR_n] of the evaluation's Deflated Sharpe.
            # The backtest trades horizon 1 only, so only then is a trial's Sharpe comparable.
            returns=(
                forward_returns(raw_prices, horizon=1).reindex(dev.X.index)
                if validation.horizon == 1
                else None
            ),
        )
        duration = time.perf_counter() - started
        run = mlflow_tracking.active_run()
        mlflow.log_dict(result.best_params, "best_hyperparameters.json")
        mlflow.log_metrics(
            {
                "tuning_best_cv_log_loss": result.best_value,
                "tuning_default_cv_log_loss": result.default_value,
                "tuning_trials_complete": result.n_complete,
                "tuning_trials_pruned": result.n_pruned,
            }
        )
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
    value = {
        "params": result.best_params,
        "num_boost_round": int(result.best_num_boost_round),
        "best_value": float(result.best_value),
        "default_value": float(result.default_value),
        "n_trials_total": int(result.n_trials_in_study),
        "study_name": study_name,
        "warm_started": warm_start is not None,
        "tuning_rows": result.tuning_rows,
        "tuning_train_rows": result.tuning_train_rows,
        "tuning_test_rows": result.tuning_test_rows,
        "trial_sharpes": result.trial_sharpes,
        "windows": windows.to_dict(),
    }
    trial_sharpe_sd = (
        float(np.std(result.trial_sharpes, ddof=1)) if len(result.trial_sharpes) >= 2 else math.nan
    )
    context.log.info(
        f"best CV log loss {result.best_value:.5f} vs default {result.default_value:.5f}; "
        f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed"
    )
    return dg.Output(
        value,
        metadata={
            "best_cv_log_loss": float(result.best_value),
            "default_params_cv_log_loss": float(result.default_value),
            "improvement_over_default": float(result.default_value - result.best_value),
            "trials_complete": result.n_complete,
            "trials_pruned": result.n_pruned,
            "trials_failed": result.n_failed,
            "trials_in_study": result.n_trials_in_study,
            # Per-period SD of the complete trials' out-of-fold Sharpes (NaN: fewer than 2).
            "trial_sharpe_sd": trial_sharpe_sd,
            "boosting_rounds_trained": result.boosting_rounds_total,
            "duration_s": round(duration, 2),
            "folds": len(folds),
            # Tuning ranks params on a seeded ticker subset per fold; staging uses every dev row.
            "tuning_rows": result.tuning_rows,
            "dev_rows": result.dev_rows,
            "tuning_train_test_rows_per_fold": ", ".join(
                f"{tr:,}/{te:,} ({n} tickers)"
                for tr, te, n in zip(
                    result.tuning_train_rows,
                    result.tuning_test_rows,
                    result.tuning_tickers,
                    strict=True,
                )
            ),
            "max_tuning_rows": str(config.max_tuning_rows),
            "development_window": str(windows.development),
            "evaluation_window": str(windows.evaluation),
            "parameter_importances": table_metadata(importances),
            "best_params": table_metadata(params),
            "mlflow_run": run_link(run),
        },
    )


@dg.asset(
    group_name="training",
    **ownership("weekly"),
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
    raw_prices: pd.DataFrame,
    tuned_params: dict,
    mlflow_tracking: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
) -> dg.Output[dict]:
    with step_guard(context):
        data = validation.labelled(features, raw_prices)
        recipe = Recipe(
            params={**BASE_PARAMS, **tuned_params["params"], "seed": config.seed},
            num_boost_round=int(tuned_params["num_boost_round"]),
            feature_schema_hash=feature_schema_hash(),
            label_definition=label_definition(validation.horizon),
            max_training_rows=config.max_training_rows,
        )
        candidate = build_candidate(recipe, data, Windows.from_dict(tuned_params["windows"]))
        refit = data.within(candidate.windows.refit)
        facts = VersionFacts(
            version=None,
            feature_schema_hash=recipe.feature_schema_hash,
            label_definition=recipe.label_definition,
            params_hash=recipe_tags(recipe)["params_hash"],
            data_fingerprint=fingerprint(raw_prices),
        )
        latest = latest_version(stores.tracking_uri, stores.model_name)
        previous = (
            None
            if latest is None
            else VersionFacts(
                **version_facts(stores.tracking_uri, stores.model_name, latest.version)
            )
        )
        semver = next_version(previous, facts)
        run = mlflow_tracking.active_run()
        mlflow.log_params({f"lgbm_{k}": v for k, v in recipe.params.items()})
        tags = {
            **recipe_tags(recipe),
            "semver": semver,
            "data_fingerprint": facts.data_fingerprint,
            "training_window": json.dumps(candidate.windows.refit.to_dict()),
            "evaluation_window": json.dumps(candidate.windows.evaluation.to_dict()),
            "dagster_run_id": context.run_id,
            # The evaluation's Deflated Sharpe Ratio is taken against this version's own study.
            "tuning_study": str(tuned_params["study_name"]),
            "tuning_trials": str(int(tuned_params["n_trials_total"])),
            "trial_sharpes": json.dumps(sharpe_summary(tuned_params["trial_sharpes"])),
        }
        with stores.registry_lock():
            handle = register_candidate(
                candidate.booster,
                tracking_uri=stores.tracking_uri,
                run_id=run.info.run_id,
                name=stores.model_name,
                semver=semver,
                tags=tags,
                input_example=refit.X.head(5),
                reference=model_reference(
                    refit.X, refit.y, candidate.out_of_sample, settings.DRIFT.n_bins
                ),
                metadata={
                    **tags,
                    "params": recipe.params,
                    "features": list(refit.X.columns),
                    "training_rows": candidate.training_rows,
                    "horizon": validation.horizon,
                },
                export_root=stores.models_path,
            )
    semver = handle.semver  # the registry moves a semver another version holds to its next patch
    context.log.info(f"registered {handle.name} v{handle.version} ({semver}) as staging")
    return dg.Output(
        {
            **handle.to_dict(),
            "recipe": dataclasses.asdict(recipe),
            "windows": candidate.windows.to_dict(),
            "out_of_sample": candidate.out_of_sample,
        },
        metadata={
            "model_version": dg.MetadataValue.url(mlflow_model_url(handle.name, handle.version)),
            "registry_version": int(handle.version),
            "semver": semver,
            "uri": handle.uri,
            "training_window": str(candidate.windows.refit),
            "evaluation_window": str(candidate.windows.evaluation),
            "training_rows": candidate.training_rows,
            "walk_forward_blocks": len(candidate.windows.blocks),
            "boosting_rounds": recipe.num_boost_round,
            "feature_importance_gain": table_metadata(
                pd.DataFrame(
                    {"gain": candidate.booster.feature_importance("gain")},
                    index=pd.Index(candidate.booster.feature_name(), name="feature"),
                ).sort_values("gain", ascending=False)
            ),
            "export": dg.MetadataValue.path(str(stores.models_path / "staging")),
            "mlflow_run": run_link(run),
        },
    )
