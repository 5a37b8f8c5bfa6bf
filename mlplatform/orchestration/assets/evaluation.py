"""Group `evaluation`: the backtest report and its blocking promotion checks."""

import json

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_mlflow.resources import MlFlow
from pydantic import Field

from mlplatform import config as settings
from mlplatform.evaluation import markdown_table, naive_baselines, run_backtest, write_html
from mlplatform.evaluation.promotion import (
    BLOCKING_CRITERIA,
    CRITERION_DESCRIPTIONS,
    PRODUCTION,
    STAGING,
    evaluate_promotion,
)
from mlplatform.features import feature_schema_hash, forward_returns, hold_returns
from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.errors import STORE_RETRY_POLICY, step_guard
from mlplatform.orchestration.metadata import mlflow_model_url, ownership, run_link
from mlplatform.orchestration.resources import (
    MarketDataSource,
    Notifier,
    PlatformStores,
    ValidationScheme,
)
from mlplatform.registry import get_alias_version, load_booster
from mlplatform.training import predict_up_proba

# Numbers plotted across materializations in the UI's Plots tab.
PLOTTED = ("accuracy", "auc", "log_loss", "brier", "long_short_sharpe", "long_short_dsr")


class BacktestConfig(dg.Config):
    cost_bps: float = Field(
        default=settings.BACKTEST.cost_bps, description="One-way transaction cost, basis points."
    )


def _bayes_rows(
    market_data: MarketDataSource, index: pd.MultiIndex, labels: pd.Series
) -> dict[str, float]:
    """On synthetic data: what the best possible model (the true P(up)) scores on the window."""
    if market_data.kind != "synthetic":
        return {}
    snapshot = market_data.load()
    if snapshot.prob_up is None:
        return {}
    prob = snapshot.prob_up.reindex(index).dropna()
    if prob.empty:
        return {}
    realised = labels.reindex(prob.index)
    return {
        "bayes_expected_accuracy": float(np.maximum(prob, 1 - prob).mean()),
        "bayes_realised_accuracy": float(((prob > 0.5).astype(int) == realised).mean()),
    }


def _not_comparable(tags: dict[str, str], backtest_start: pd.Timestamp) -> str | None:
    """Why a registry version cannot be scored on a window starting at `backtest_start`."""
    if tags.get("feature_schema_hash") != feature_schema_hash():
        return "it was trained on another feature schema"
    window = tags.get("training_window", "")
    if "/" not in window:
        return "it records no training window"
    trained_until = pd.Timestamp(window.split("/")[1])
    if trained_until >= backtest_start:
        return (
            f"it was trained on data up to {trained_until.date()}, inside the backtest window "
            f"that starts {backtest_start.date()}"
        )
    return None


@dg.asset(
    group_name="evaluation",
    **ownership("weekly"),
    kinds={"mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="Staging vs production vs naive baselines on the held-out window neither saw.",
)
def backtest_report(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    features: pd.DataFrame,
    raw_prices: pd.DataFrame,
    staging_model: dict,
    tuned_params: dict,
    mlflow_tracking: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
    market_data: MarketDataSource,
) -> dg.Output[dict]:
    with step_guard(context):
        split = validation.split(features, raw_prices)
        X = split.X_backtest
        backtest_start = split.backtest_dates.min()
        client = stores.client
        staging = client.get_model_version(staging_model["name"], str(staging_model["version"]))
        staging_problem = _not_comparable(staging.tags, backtest_start)
        if staging_problem:
            raise dg.Failure(
                description=f"staging v{staging.version} cannot be scored on this window: "
                f"{staging_problem}; materialize staging_model again with the current "
                "validation settings",
                allow_retries=False,
            )
        staging_booster = load_booster(stores.tracking_uri, staging.name, staging.version)
        predictions = {
            STAGING: pd.Series(predict_up_proba(staging_booster, X), index=X.index),
        }
        production = get_alias_version(
            stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS
        )
        production_version = production.version if production is not None else None
        production_excluded = None
        if production is not None:
            production_excluded = _not_comparable(production.tags, backtest_start)
        if production is not None and not production_excluded:
            production_booster = load_booster(
                stores.tracking_uri, stores.model_name, production.version
            )
            predictions[PRODUCTION] = pd.Series(
                predict_up_proba(production_booster, X), index=X.index
            )
        elif production_excluded:
            context.log.warning(f"production v{production_version} left out: {production_excluded}")
        predictions.update(naive_baselines(split.y_dev, X.index, raw_prices))
        # N and the trials' Sharpes come from the study that produced this staging version.
        n_trials = int(staging.tags.get("tuning_trials", tuned_params.get("n_trials_total", 1)))
        trial_sharpes = (
            json.loads(staging.tags["trial_sharpes"])
            if "trial_sharpes" in staging.tags
            else tuned_params.get("trial_sharpes")
        )
        result = run_backtest(
            predictions,
            split.y_backtest,
            forward_returns(raw_prices, horizon=validation.horizon),
            cost_bps=config.cost_bps,
            n_trials={STAGING: n_trials},
            # Per-period out-of-fold Sharpes of the study's trials (< 2: the DSR's fallback).
            trial_sharpes=trial_sharpes,
            periods_per_year=settings.BACKTEST.periods_per_year,
            hold_returns=hold_returns(raw_prices, horizon=validation.horizon),
            horizon=validation.horizon,
        )
        bayes = _bayes_rows(market_data, X.index, split.y_backtest)
        table = markdown_table(result)
        html_path = write_html(
            result,
            stores.reports_path / f"backtest_v{staging_model['version']}.html",
            title=f"Backtest of {staging_model['name']} v{staging_model['version']}",
            extra=bayes or None,
        )
        run = mlflow_tracking.active_run()
        mlflow.log_artifact(str(html_path), artifact_path="backtest")
        staging_metrics = result.metrics[STAGING]
        mlflow.log_metrics(
            {
                f"backtest_{key}": float(staging_metrics[key])
                for key in PLOTTED
                if staging_metrics.get(key) is not None
            }
        )
    verdicts = evaluate_promotion(result.metrics)
    summary = result.to_dict(include_equity=False)
    report = {
        "staging_version": str(staging_model["version"]),
        "staging_semver": staging_model.get("semver"),
        "production_version": None if production_version is None else str(production_version),
        "window": list(split.backtest_window),
        "metrics": summary["metrics"],
        "mcnemar": summary.get("mcnemar"),
        "bayes": bayes,
        "html": str(html_path),
        "verdicts": {v.name: v.passed for v in verdicts},
    }
    metadata: dict[str, dg.RawMetadataValue] = {
        "staging_version": str(staging_model["version"]),
        "production_version": "none" if production_version is None else str(production_version),
        "production_compared": production_version is not None and not production_excluded,
        "production_left_out_because": production_excluded or "",
        "dsr_trials": n_trials,
        "window": f"{split.backtest_window[0]} → {split.backtest_window[1]}",
        "rows": int(result.n_rows),
        "comparison": dg.MetadataValue.md(table),
        "report": dg.MetadataValue.path(str(html_path)),
        "staging_model": dg.MetadataValue.url(
            mlflow_model_url(staging_model["name"], staging_model["version"])
        ),
        "mlflow_run": run_link(run),
        "promotion_criteria_passed": all(v.passed for v in verdicts if v.blocking),
    }
    for key in PLOTTED:
        value = staging_metrics.get(key)
        if value is not None and np.isfinite(value):
            metadata[f"staging_{key}"] = float(value)
    for name, metrics in result.metrics.items():
        if name != STAGING and metrics.get("accuracy") is not None:
            metadata[f"{name}_accuracy"] = float(metrics["accuracy"])
    for key, value in bayes.items():
        metadata[key] = value
    if result.mcnemar is not None:
        metadata["mcnemar_p_value_vs_production"] = float(result.mcnemar["p_value"])
    return dg.Output(report, metadata=metadata)


PROMOTION_CHECK_SPECS = [
    dg.AssetCheckSpec(
        name=name,
        asset="backtest_report",
        blocking=name in BLOCKING_CRITERIA,
        description=description,
    )
    for name, description in CRITERION_DESCRIPTIONS.items()
]
PROMOTION_CHECK_NAMES = tuple(spec.name for spec in PROMOTION_CHECK_SPECS)


@dg.multi_asset_check(specs=PROMOTION_CHECK_SPECS, description="The promotion criteria.")
def promotion_criteria(
    context: dg.AssetCheckExecutionContext, backtest_report: dict, notifier: Notifier
):
    verdicts = evaluate_promotion(backtest_report["metrics"])
    for verdict in verdicts:
        yield dg.AssetCheckResult(
            check_name=verdict.name,
            asset_key="backtest_report",
            passed=verdict.passed,
            severity=(
                dg.AssetCheckSeverity.ERROR if verdict.blocking else dg.AssetCheckSeverity.WARN
            ),
            description=verdict.description,
            metadata={
                "staging_version": backtest_report["staging_version"],
                **{k: float(v) for k, v in verdict.numbers.items() if v is not None},
            },
        )
    if all(v.passed for v in verdicts if v.blocking):
        version = backtest_report["staging_version"]
        notifier.send(
            Notification(
                NotificationKind.READY_FOR_REVIEW,
                f"staging v{version} passed every promotion criterion: ready for review",
                fields={
                    "staging_version": version,
                    "semver": backtest_report.get("staging_semver"),
                    "accuracy": backtest_report["metrics"][STAGING].get("accuracy"),
                    "how_to_promote": "Materialize production_model in the Dagster UI, "
                    "or `make promote REASON=...`",
                },
                link=backtest_report.get("html"),
            )
        )
        context.log.info(f"staging v{version} is ready for review")
