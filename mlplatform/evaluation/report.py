"""Human-readable views of a BacktestResult: a markdown comparison table and a standalone HTML page.

Chart choice: the equity curves are an inline SVG drawn here, with a few lines of inline
JavaScript for a hover read-out and legend toggles. Plotly was the alternative: with
include_plotlyjs="cdn" the page is blank offline (this machine, and users behind a proxy), and
embedding plotly.min.js adds about 4.6 MB to every report (×1 per weekly run, in MLflow artifacts
and Dagster metadata links). The SVG page is a few tens of KB, needs no network, and shows the same
lines; it is the smaller option that works everywhere.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

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
_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


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


def _svg_chart(equity: pd.DataFrame, *, width: int = 900, height: int = 380) -> str:
    """Inline SVG of the equity curves (x = trading day, y = equity), ~1 000 points at most."""
    if equity.empty:
        return "<p>No equity curve: empty window.</p>"
    step = max(1, math.ceil(len(equity) / 1000))
    eq = equity.iloc[::step]
    left, right, top, bottom = 60, 20, 15, 40
    pw, ph = width - left - right, height - top - bottom
    values = eq.to_numpy(dtype=float)
    finite = values[pd.notna(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = min(lo, 1.0), max(hi, 1.0)
    pad = (hi - lo) * 0.05 or 0.01
    lo, hi = lo - pad, hi + pad
    n = len(eq)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph * (hi - v) / (hi - lo)

    parts = [
        f'<svg id="eqchart" viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>',
    ]
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{y(1.0):.1f}" y2="{y(1.0):.1f}" '
        'stroke="#999" stroke-dasharray="2,3"/>'
    )
    for k in range(min(6, n)):
        i = round(k * (n - 1) / max(1, min(6, n) - 1))
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + ph + 16}" text-anchor="middle">'
            f"{eq.index[i].date().isoformat()}</text>"
        )
    for j, col in enumerate(eq.columns):
        color = _PALETTE[j // len(STRATEGIES) % len(_PALETTE)]
        dash = ' stroke-dasharray="5,3"' if str(col).endswith("/long_flat") else ""
        pts = " ".join(
            f"{x(i):.1f},{y(v):.2f}" for i, v in enumerate(eq[col].to_numpy()) if pd.notna(v)
        )
        parts.append(
            f'<polyline data-series="{j}" points="{pts}" fill="none" stroke="{color}" '
            f'stroke-width="1.5"{dash}><title>{html.escape(str(col))}</title></polyline>'
        )
    parts.append(
        f'<line id="cursor" x1="0" x2="0" y1="{top}" y2="{top + ph}" stroke="#444" '
        'visibility="hidden"/>'
        "</svg>"
    )
    legend = "".join(
        f'<button class="lg" data-series="{j}" style="border-color:'
        f'{_PALETTE[j // len(STRATEGIES) % len(_PALETTE)]}">{html.escape(str(c))}</button>'
        for j, c in enumerate(eq.columns)
    )
    data = {
        "dates": [d.date().isoformat() for d in eq.index],
        "names": [str(c) for c in eq.columns],
        "values": [[None if pd.isna(v) else round(float(v), 5) for v in eq[c]] for c in eq.columns],
        "left": left,
        "pw": pw,
        "width": width,
    }
    # "<" escaped so no model name can close the script element
    payload = json.dumps(data).replace("<", "\\u003c")
    script = (
        "<script>(function(){var D=" + payload + ";"
        "var svg=document.getElementById('eqchart'),cur=document.getElementById('cursor'),"
        "tip=document.getElementById('eqtip'),n=D.dates.length;"
        "svg.addEventListener('mousemove',function(e){var r=svg.getBoundingClientRect();"
        "var px=(e.clientX-r.left)*D.width/r.width;var i=n>1?Math.round((px-D.left)/D.pw*(n-1)):0;"
        "i=Math.max(0,Math.min(n-1,i));var cx=D.left+(n>1?D.pw*i/(n-1):D.pw/2);"
        "cur.setAttribute('x1',cx);cur.setAttribute('x2',cx);cur.setAttribute('visibility','visible');"
        "var s='<b>'+D.dates[i]+'</b>';for(var j=0;j<D.names.length;j++){var v=D.values[j][i];"
        "var hid=svg.querySelector('polyline[data-series=\"'+j+'\"]').style.display==='none';"
        "if(!hid&&v!==null){s+='<br>'+D.names[j].replace(/&/g,'&amp;').replace(/</g,'&lt;')"
        "+': '+v.toFixed(4);}}tip.innerHTML=s;});"
        "svg.addEventListener('mouseleave',function(){cur.setAttribute('visibility','hidden');});"
        "document.querySelectorAll('button.lg').forEach(function(b){b.addEventListener('click',"
        "function(){var l=svg.querySelector('polyline[data-series=\"'+b.dataset.series+'\"]');"
        "var off=l.style.display==='none';l.style.display=off?'':'none';"
        "b.classList.toggle('off',!off);});});})();</script>"
    )
    return (
        "".join(parts)
        + f'<div class="legend">{legend}</div>'
        + '<div id="eqtip" class="tip">Hover the chart for values; click a legend entry to '
        "hide or show a line.</div>" + script
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:0.9em}
th,td{border:1px solid #ddd;padding:3px 8px}td{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f4f4f4}tbody th{text-align:left;font-weight:normal}
.legend{margin:4px 0}.lg{background:#fff;border:2px solid;border-radius:3px;margin:2px;
cursor:pointer;font-size:0.8em}.lg.off{opacity:0.35}.tip{font-size:0.85em;min-height:3em}
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
        _svg_chart(result.equity),
        "<h2>Comparison (same rows for every model)</h2>",
        _html_table(result, None, ALL_METRICS),
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
