"""Human-readable views of a BacktestResult: a markdown comparison table and a standalone HTML page.

The equity curves are a matplotlib PNG embedded in the page as base64: the page stays one file
that needs no network (Plotly from a CDN is blank offline) and no script.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from mlplatform.evaluation.backtest import (
    CLASSIFICATION_METRICS,
    STRATEGIES,
    STRATEGY_METRICS,
    BacktestResult,
)

DEFAULT_METRICS: tuple[str, ...] = (
    *(k for k in CLASSIFICATION_METRICS if k != "down_share"),  # 1 - up_share
    *(
        f"long_short_{k}"
        for k in ("ann_return", "sharpe", "max_drawdown", "turnover", "psr", "dsr")
    ),
    *(f"long_flat_{k}" for k in ("ann_return", "sharpe", "dsr")),
)
ALL_METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + tuple(
    f"{s}_{k}" for s in STRATEGIES for k in STRATEGY_METRICS
)
_PERCENT = ("ann_return", "max_drawdown")


def format_value(metric: str, value: Any) -> str:
    """One cell: counts as integers, returns as percent, p-values in 3 significant digits."""
    if value is None:
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if metric == "n":
        return f"{round(v):,}"
    if metric.endswith(_PERCENT):
        return f"{v * 100:.2f} %"
    if metric.startswith("p_value"):
        return f"{v:.1e}" if 0 < v < 1e-4 else f"{v:.3g}"
    return f"{v:.4f}"


def _metrics_of(result: BacktestResult | Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Accept the result itself or its to_dict() (e.g. read back from stored JSON)."""
    if isinstance(result, BacktestResult):
        return dict(result.metrics)
    return dict(result["metrics"])


def _frame(
    result: BacktestResult | Mapping[str, Any],
    columns: Sequence[str] | None,
    metrics: Sequence[str] | None,
) -> pd.DataFrame:
    """Formatted values: a row per metric, a column per model."""
    by_model = _metrics_of(result)
    models = list(columns) if columns is not None else list(by_model)
    unknown = [c for c in models if c not in by_model]
    if unknown:
        raise KeyError(f"no such model(s) in the result: {unknown}; have {list(by_model)}")
    keys = list(metrics) if metrics is not None else list(DEFAULT_METRICS)
    body = [[format_value(k, by_model[c].get(k)) for c in models] for k in keys]
    return pd.DataFrame(body, index=pd.Index(keys, name="metric"), columns=models)


def markdown_table(
    result: BacktestResult | Mapping[str, Any],
    columns: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> str:
    """Models side by side (columns, default all in scoring order), metrics as rows (default
    DEFAULT_METRICS). Suitable for Dagster MetadataValue.md and MLflow text artifacts."""
    frame = _frame(result, columns, metrics)
    # pandas' to_markdown (tabulate) escapes nothing: a "|" in a name would split its cell
    frame = frame.rename(index=_escape_pipe, columns=_escape_pipe)
    align = ("left", *("right",) * frame.shape[1])
    return frame.to_markdown(colalign=align, disable_numparse=True) + "\n"


def _escape_pipe(text: str) -> str:
    return text.replace("|", "\\|")


def _html_table(
    result: BacktestResult, columns: Sequence[str] | None, metrics: Sequence[str]
) -> str:
    frame = _frame(result, columns, metrics).rename_axis(index=None, columns="metric")
    return frame.to_html(classes="metrics", border=0)  # escapes, like html.escape


def _equity_chart(equity: pd.DataFrame) -> str:
    """The equity curves as an <img> of a matplotlib PNG (a colour per model; solid long/short,
    dashed long/flat)."""
    if equity.empty:
        return "<p>No equity curve: empty window.</p>"
    figure = Figure(figsize=(10, 4.2), dpi=90, layout="constrained")
    axes = figure.subplots()
    colours = matplotlib.color_sequences["tab10"]
    for j, column in enumerate(equity.columns):
        axes.plot(
            equity.index,
            equity[column].to_numpy(dtype=float),
            color=colours[j // len(STRATEGIES) % len(colours)],
            linestyle="--" if str(column).endswith("/long_flat") else "-",
            linewidth=1.2,
            label=str(column),
        )
    axes.axhline(1.0, color="#999", linewidth=0.8, linestyle=":")
    axes.set_ylabel("equity (1 = start)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncols=2, loc="upper left")
    png = io.BytesIO()
    figure.savefig(png, format="png")
    encoded = base64.b64encode(png.getvalue()).decode("ascii")
    return f'<img alt="equity curves" src="data:image/png;base64,{encoded}">'


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:0.9em}
th,td{border:1px solid #ddd;padding:3px 8px}td{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f4f4f4}tbody th{text-align:left;font-weight:normal}
img{max-width:100%}
"""


def _kv_table(items: Mapping[str, Any]) -> str:
    return pd.Series(items, dtype=object).to_frame().to_html(header=False, border=0)


def render_html(
    result: BacktestResult,
    *,
    title: str = "Backtest report",
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The full standalone page as a string (write_html writes it atomically)."""
    summary = {
        "window": f"{result.window[0].date()} .. {result.window[1].date()}",
        "rows (date, ticker)": f"{result.n_rows:,}",
        "tickers": result.n_tickers,
        "trading days": len(result.equity.index),
        "cost (bps, one-way)": result.cost_bps,
        "horizon (bars)": result.horizon,
        "trials per model (DSR)": ", ".join(f"{k}: {v}" for k, v in result.n_trials.items()),
        "generated (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if result.mcnemar is not None:
        mc = result.mcnemar
        summary[f"McNemar {result.primary} vs {result.challenger}"] = (
            f"p = {format_value('p_value', mc['p_value'])}, discordant = {mc['n_discordant']} "
            f"({result.primary} only right: {mc['primary_only_correct']}, "
            f"{result.challenger} only right: {mc['challenger_only_correct']})"
        )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        _kv_table(summary),
    ]
    if extra:
        sections += ["<h2>Details</h2>", _kv_table(extra)]
    sections += [
        "<h2>Equity curves (net of costs; solid = long/short, dashed = long/flat)</h2>",
        _equity_chart(result.equity),
        "<h2>Comparison (same rows for every model)</h2>",
        _html_table(result, None, ALL_METRICS),
    ]
    if result.slices is not None:
        sections += [
            "<h2>Where the edge lives (the same rows by year, volatility regime and ticker)</h2>",
            result.slices.to_html(index=False, na_rep="", float_format="{:.4f}".format, border=0),
        ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_html(
    result: BacktestResult,
    path: str | os.PathLike[str],
    *,
    title: str = "Backtest report",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the report to `path` via a temp file in the same folder and an atomic rename, so a
    reader never sees half a page."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(result, title=title, extra=extra)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
