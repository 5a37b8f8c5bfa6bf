"""Reports: the markdown table and the standalone HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplatform.evaluation import (
    BacktestResult,
    BacktestSpec,
    markdown_table,
    run_backtest,
    write_html,
)
from mlplatform.evaluation.report import format_value


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    dates = pd.bdate_range("2025-06-02", periods=30)
    idx = pd.MultiIndex.from_product([dates, ["AAA", "BBB"]], names=["date", "ticker"])
    rng = np.random.default_rng(0)
    fr = pd.Series(rng.normal(0.0, 0.01, len(idx)), index=idx)
    labels = (fr > 0).astype(int)
    preds = {
        "staging": pd.Series(rng.uniform(0, 1, len(idx)), index=idx),
        "production": pd.Series(rng.uniform(0, 1, len(idx)), index=idx),
        "always_up": pd.Series(1.0, index=idx),
    }
    return run_backtest(preds, labels, fr, BacktestSpec(cost_bps=5, n_trials=20))


def test_format_value() -> None:
    assert format_value("n", 1234.0) == "1,234"
    assert format_value("accuracy", 0.51234) == "0.5123"
    assert format_value("long_short_ann_return", 0.1234) == "12.34 %"
    assert format_value("p_value_vs_majority", 0.012345) == "0.0123"
    assert format_value("p_value_vs_majority", 1e-7) == "1.0e-07"
    assert format_value("auc", float("nan")) == "n/a"
    assert format_value("auc", None) == "n/a"
    assert format_value("long_short_sortino", float("inf")) == "∞"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_markdown_table(result: BacktestResult) -> None:
    md = markdown_table(result)
    lines = md.strip().splitlines()
    assert _cells(lines[0]) == ["metric", "staging", "production", "always_up"]
    assert lines[1].startswith("|:-") and lines[1].endswith("-:|")  # names left, numbers right
    acc = next(line for line in lines if _cells(line)[0] == "accuracy")
    assert format_value("accuracy", result.metrics["staging"]["accuracy"]) in acc
    assert ["n", "60", "60", "60"] in [_cells(line) for line in lines]
    # a subset of models and metrics, in the order asked
    small = markdown_table(result, columns=["production", "staging"], metrics=["auc", "n"])
    assert _cells(small.splitlines()[0]) == ["metric", "production", "staging"]
    assert len(small.strip().splitlines()) == 4
    # also works from the JSON form
    assert markdown_table(json.loads(json.dumps(result.to_dict()))) == md
    with pytest.raises(KeyError, match="nope"):
        markdown_table(result, columns=["nope"])


def test_write_html(result: BacktestResult, tmp_path: Path) -> None:
    target = tmp_path / "reports" / "backtest.html"
    out = write_html(result, target, title="Backtest <v1.2.0>", extra={"staging version": "1.2.0"})
    assert out == target and target.is_file()
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Backtest &lt;v1.2.0&gt;" in page and "<v1.2.0>" not in page
    assert "2025-06-02 .. 2025-07-11" in page  # the window
    assert "staging version" in page and "1.2.0" in page
    assert page.count('<img alt="equity curves" src="data:image/png;base64,') == 1
    assert "McNemar staging vs production" in page
    for model in ("staging", "production", "always_up"):
        assert f"<th>{model}</th>" in page
    assert format_value("accuracy", result.metrics["staging"]["accuracy"]) in page
    text = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', "", page)  # the page less the PNG
    assert "cdn" not in text.lower() and "http://" not in text and "<script" not in text
    assert len(page) < 200_000
    assert [p.name for p in target.parent.iterdir()] == ["backtest.html"]  # no temp left
    # rewriting replaces the file in place
    write_html(result, target, title="again")
    assert "<title>again</title>" in target.read_text(encoding="utf-8")


def test_model_names_cannot_break_the_page(result: BacktestResult, tmp_path: Path) -> None:
    idx = result.equity.index
    res = BacktestResult(
        metrics={"</script><b>x": result.metrics["staging"]},
        equity=pd.DataFrame({"</script><b>x/long_short": np.ones(len(idx))}, index=idx),
        returns=pd.DataFrame({"</script><b>x/long_short": np.zeros(len(idx))}, index=idx),
        mcnemar=None,
        window=result.window,
        n_rows=result.n_rows,
        n_tickers=result.n_tickers,
    )
    page = write_html(res, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "</script><b>" not in page and "<script" not in page
