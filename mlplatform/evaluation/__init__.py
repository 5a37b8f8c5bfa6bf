"""Evaluation: direction metrics, significance tests, strategy backtest and reports (pure)."""

from mlplatform.evaluation.backtest import (
    STRATEGIES,
    BacktestResult,
    BacktestSpec,
    naive_rules,
    previous_direction,
    run_backtest,
    up_rate,
)
from mlplatform.evaluation.metrics import (
    McNemarResult,
    classification_metrics,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    mcnemar_exact,
    probabilistic_sharpe_ratio,
    strategy_metrics,
    wilson_interval,
)
from mlplatform.evaluation.report import markdown_table, render_html, write_html

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "BacktestSpec",
    "McNemarResult",
    "classification_metrics",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "markdown_table",
    "mcnemar_exact",
    "naive_rules",
    "previous_direction",
    "probabilistic_sharpe_ratio",
    "render_html",
    "run_backtest",
    "strategy_metrics",
    "up_rate",
    "wilson_interval",
    "write_html",
]
