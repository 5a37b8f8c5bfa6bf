"""Group `evaluation`: the backtest report and its blocking promotion checks."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_mlflow.resources import MlFlow
from mlflow.entities.model_registry import ModelVersion
from pydantic import Field

from mlplatform import config as settings
from mlplatform.evaluation import BacktestResult, markdown_table, write_html
from mlplatform.monitoring.decay import Expectation
from mlplatform.notifications import retrain_finished
from mlplatform.orchestration.errors import STORE_RETRY_POLICY, CheckedConfig, step_guard
from mlplatform.orchestration.metadata import (
    mlflow_artifact_url,
    mlflow_model_url,
    ownership,
    rounded_metadata,
    run_link,
    table_metadata,
)
from mlplatform.orchestration.resources import (
    Notifier,
    PlatformStores,
    ValidationScheme,
)
from mlplatform.promotion import (
    CRITERION_DESCRIPTIONS,
    NO_PRODUCTION,
    STAGING,
    PromotionPolicy,
    evaluate_criteria,
)
from mlplatform.promotion.evidence import (
    BacktestReport,
    CandidateEvaluation,
    Contenders,
    evaluate_candidate,
)
from mlplatform.registry import get_alias_version, record_evaluation
from mlplatform.registry.card import criteria_tags, slices_tag, walk_forward_tag
from mlplatform.training import Windows
from mlplatform.training.retrain import StagingModel

POLICY_METADATA_KEY = "promotion_policy"
EXPECTATION_TAG = "expectation"  # on a version: its walk-forward daily accuracy, for the decay test
# Staging's figures plotted across retrains in the UI's Plots view: metric -> metadata key.
HEADLINE = {
    "accuracy": "accuracy",
    "auc": "auc",
    "log_loss": "log_loss",
    "brier": "brier",
    "long_short_sharpe": "sharpe_after_costs",
    "long_short_dsr": "deflated_sharpe",
}


class BacktestConfig(CheckedConfig):
    cost_bps: float = Field(
        default=settings.BACKTEST.cost_bps,
        ge=0,
        le=settings.BACKTEST.max_cost_bps,
        description="One-way transaction cost, basis points.",
    )


def _report(
    staging_model: StagingModel,
    production: ModelVersion | None,
    result: BacktestResult,
    html_path: Path,
    url: str,
) -> BacktestReport:
    """The asset's value: what promotion_criteria and a person read of this evaluation."""
    return BacktestReport(
        staging_version=staging_model.version,
        staging_semver=staging_model.semver,
        production_version=NO_PRODUCTION if production is None else str(production.version),
        windows=staging_model.windows,
        metrics=result.to_dict(include_equity=False)["metrics"],
        cost_bps=float(result.cost_bps),
        html=html_path,
        report_url=url,
    )


def _backtest_metadata(
    report: BacktestReport,
    evaluation: CandidateEvaluation,
    windows: Windows,
    staging: ModelVersion,
    run: Any,
) -> dict[str, Any]:
    """Numbers only for what changes between retrains and is worth a plot: staging's headline
    figures (they sort first in the UI's Plots view) and the baselines' accuracy beside them
    (`vs_*`); constants and identifiers as text."""
    result = evaluation.result
    staging_metrics = result.metrics[STAGING]
    metadata: dict[str, Any] = {
        name: float(staging_metrics[key])
        for key, name in HEADLINE.items()
        if staging_metrics.get(key) is not None and np.isfinite(staging_metrics[key])
    }
    for model, metrics in result.metrics.items():
        if model != STAGING and metrics.get("accuracy") is not None:
            metadata[f"vs_{model}_accuracy"] = float(metrics["accuracy"])
    metadata = rounded_metadata(metadata)
    mcnemar = "not compared" if result.mcnemar is None else f"{result.mcnemar['p_value']:.4g}"
    left_out = evaluation.production_left_out_because
    metadata.update(
        {
            "staging_version": str(staging.version),
            "production_version": report.production_version,
            "production_compared": "yes" if left_out is None else f"no: {left_out}",
            "mcnemar_p_vs_production": dg.MetadataValue.text(mcnemar),
            "evaluation_window": str(windows.evaluation),
            "walk_forward": dg.MetadataValue.text(
                f"{len(windows.blocks)} blocks, {int(result.n_rows):,} rows, costs "
                f"{report.cost_bps:g} bps one way"
            ),
            "deflated_sharpe_trials": dg.MetadataValue.text(str(staging.tags["tuning_trials"])),
            "comparison": dg.MetadataValue.md(markdown_table(result)),
            "where_the_edge_lives": table_metadata(result.slices),
            "report": dg.MetadataValue.url(report.report_url),
            "report_file": dg.MetadataValue.path(report.html),
            "staging_model": dg.MetadataValue.url(mlflow_model_url(staging.name, staging.version)),
            "mlflow_run": run_link(run),
        }
    )
    return metadata


def _publish(
    result: BacktestResult, stores: PlatformStores, staging: ModelVersion, run: Any
) -> tuple[Path, str]:
    """Write the HTML report, log it and staging's plotted numbers to the MLflow run; the report's
    path and its MLflow UI URL."""
    html_path = write_html(
        result,
        stores.reports_path / f"backtest_v{staging.version}.html",
        title=f"Walk-forward evaluation of {staging.name} v{staging.version}",
    )
    mlflow.log_artifact(str(html_path), artifact_path="backtest")
    staging_metrics = result.metrics[STAGING]
    mlflow.log_metrics(
        {
            f"backtest_{key}": float(staging_metrics[key])
            for key in HEADLINE
            if staging_metrics.get(key) is not None
        }
    )
    return html_path, mlflow_artifact_url(run, f"backtest/{html_path.name}")


@dg.asset(
    group_name="evaluation",
    **ownership("weekly"),
    kinds={"mlflow"},
    retry_policy=STORE_RETRY_POLICY,
    description="Staging's recipe vs production's recipe vs naive baselines, all walked forward "
    "over the same evaluation window that tuning never saw.",
)
def backtest_report(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    features: pd.DataFrame,
    labels: pd.DataFrame,
    raw_prices: pd.DataFrame,
    staging_model: StagingModel,
    mlflow: dg.ResourceParam[MlFlow],
    stores: PlatformStores,
    validation: ValidationScheme,
    market_truth: pd.Series | None,
) -> dg.Output[BacktestReport]:
    with step_guard(context):
        data = validation.labelled(features, labels, raw_prices)
        windows = staging_model.windows  # the blocks staging was scored on
        staging = stores.client.get_model_version(staging_model.name, staging_model.version)
        production = get_alias_version(
            stores.tracking_uri, stores.model_name, settings.PRODUCTION_ALIAS
        )
        contenders = Contenders.from_registry_tags(
            staging_model.out_of_sample,
            staging_model.recipe,
            staging.tags,
            None if production is None else production.tags,
        )
        if contenders.production_left_out_because and production is not None:
            context.log.warning(
                f"production v{production.version} left out: "
                f"{contenders.production_left_out_because}"
            )
        evaluation = evaluate_candidate(
            data,
            windows,
            raw_prices,
            contenders,
            cost_bps=config.cost_bps,
            truth=market_truth,
        )
        run = mlflow.active_run()
        slices = evaluation.result.slices
        assert slices is not None  # evaluate_candidate always slices the window
        html_path, url = _publish(evaluation.result, stores, staging, run)
        # What live performance will hold this version to, once it serves (the decay test).
        expectation = Expectation.of_walk_forward(
            staging_model.out_of_sample, data.within(windows.evaluation).y
        )
        record_evaluation(
            stores.registry(),
            str(staging.version),
            {
                EXPECTATION_TAG: json.dumps(expectation.to_dict()),
                **walk_forward_tag(evaluation.result.metrics),
                **slices_tag(slices.to_dict("records"), STAGING),
            },
        )
    report = _report(staging_model, production, evaluation.result, html_path, url)
    metadata = _backtest_metadata(report, evaluation, windows, staging, run)
    return dg.Output(report, metadata=metadata)


# Not `blocking=True`: Dagster's blocking only stops downstream steps of the same run and marks
# the run failed, and production_model is never in a retrain run. A failed criterion is a verdict
# on the candidate, so the retrain run succeeds and the check shows red; the gate that blocks
# promotion is production_model, which re-reads these evaluations (mlplatform.promotion).
PROMOTION_CHECK_SPECS = [
    dg.AssetCheckSpec(name=name, asset="backtest_report", description=description)
    for name, description in CRITERION_DESCRIPTIONS.items()
]


@dg.multi_asset_check(specs=PROMOTION_CHECK_SPECS, description="The promotion criteria.")
def promotion_criteria(
    context: dg.AssetCheckExecutionContext,
    backtest_report: BacktestReport,
    notifier: Notifier,
    stores: PlatformStores,
    mlflow: dg.ResourceParam[MlFlow],
    policy: dg.ResourceParam[PromotionPolicy],
):
    outcome = evaluate_criteria(backtest_report.metrics, policy, cost_bps=backtest_report.cost_bps)
    version = backtest_report.staging_version
    # The verdict where a data scientist filters: on the MLflow run and the registry version,
    # and each criterion's figures for the version's model card.
    mlflow.set_tag("promotion_verdict", outcome.line())
    criteria = [(v.name, v.passed, v.blocking, v.description) for v in outcome.verdicts]
    record_evaluation(stores.registry(), version, criteria_tags(outcome.line(), criteria))
    for verdict in outcome.verdicts:
        yield dg.AssetCheckResult(
            check_name=verdict.name,
            asset_key="backtest_report",
            passed=verdict.passed,
            severity=(
                dg.AssetCheckSeverity.ERROR if verdict.blocking else dg.AssetCheckSeverity.WARN
            ),
            description=verdict.description,
            metadata={
                "staging_version": version,
                **{k: round(float(v), 4) for k, v in verdict.numbers.items() if v is not None},
                **{k: dg.MetadataValue.text(str(v)) for k, v in verdict.thresholds.items()},
                # What the gate compares with the deployed policy before it trusts this check.
                POLICY_METADATA_KEY: dg.MetadataValue.json(policy.to_dict()),
            },
        )
    staging = backtest_report.metrics[STAGING]
    notifier.send(
        retrain_finished(
            outcome,
            version=version,
            semver=backtest_report.staging_semver,
            trigger=context.run.tags.get("mlplatform/trigger", "launched by hand"),
            figures={
                key: value
                for key in ("accuracy", "window_majority_rate", "log_loss", "long_short_sharpe")
                if (value := staging.get(key)) is not None
            },
            link=backtest_report.report_url,
        )
    )
    context.log.info(outcome.headline(version))
