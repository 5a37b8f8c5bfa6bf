"""Metadata a person reads in the Dagster UI: markdown tables and links into the MLflow UI."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from mlplatform import config


def table_markdown(frame: pd.DataFrame, *, float_format: str = "{:.4g}") -> str:
    """A markdown table without the optional `tabulate` dependency of DataFrame.to_markdown."""
    if frame.empty:
        return "_none_"
    frame = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float):
                cells.append(float_format.format(value))
            elif isinstance(value, pd.Timestamp):
                cells.append(value.date().isoformat())
            else:
                cells.append(str(value))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def frame_preview(frame: pd.DataFrame, rows: int = 5) -> str:
    return table_markdown(frame.head(rows))


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    return f"{config.mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_model_url(name: str, version: str | int) -> str:
    return f"{config.mlflow_ui_url()}/#/models/{name}/versions/{version}"


def run_link(run: Any) -> dg.MetadataValue:
    """Link to an MLflow run (an mlflow.entities.Run or ActiveRun)."""
    return dg.MetadataValue.url(mlflow_run_url(run.info.experiment_id, run.info.run_id))
