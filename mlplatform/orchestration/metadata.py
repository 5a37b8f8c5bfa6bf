"""Metadata a person reads in the Dagster UI: markdown tables and links into the MLflow UI."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from mlplatform import config


def code_version(*parts: object) -> str:
    """A short hash of what decides an asset's value besides its inputs, so the UI calls it
    stale when that changes (the feature schema, the label, the search space, the recipe)."""
    text = "\x00".join(repr(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ownership(cadence: str) -> dict[str, Any]:
    """An asset decorator's owners and tags: who answers for it, and how often it refreshes
    (daily: the data refresh; weekly: the retrain; manual: a person's decision)."""
    return {
        "owners": list(config.ASSET_OWNERS),
        "tags": {"model": config.MODEL_NAME, "cadence": cadence},
    }


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A number for a person: `digits` significant digits (0.5617424242 -> 0.5617, 1.2345e-05
    stays readable); None, NaN and infinities pass through unchanged."""
    if value is None or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def rounded_metadata(metadata: Mapping[str, Any], digits: int = 4) -> dict[str, Any]:
    """Every plain float of an asset's metadata rounded by `rounded`; everything else unchanged."""
    return {
        key: rounded(value, digits) if isinstance(value, float) else value
        for key, value in metadata.items()
    }


def _cell(value: Any, digits: int) -> str | int | float | bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else rounded(float(value), digits)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return None if value is None else str(value)


# Hand-written because Dagster has no public DataFrame -> TableMetadataValue converter (dagster-
# pandas only derives a TableSchema, and is not a dependency); the cells need JSON-safe values.
def table_metadata(frame: pd.DataFrame, digits: int = 4) -> dg.TableMetadataValue:
    """A DataFrame as Dagster table metadata (the UI renders a sortable table with a schema),
    numbers rounded by `rounded`; a non-default index becomes the first column(s)."""
    frame = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    kinds = {"b": "bool", "i": "int", "u": "int", "f": "float", "M": "date"}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(str(name), kinds.get(frame[name].dtype.kind, "string"))
            for name in frame.columns
        ]
    )
    records = [
        dg.TableRecord({str(k): _cell(v, digits) for k, v in zip(frame.columns, row, strict=True)})
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    return f"{config.mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_model_url(name: str, version: str | int) -> str:
    return f"{config.mlflow_ui_url()}/#/models/{name}/versions/{version}"


def mlflow_artifact_url(run: Any, artifact_path: str) -> str:
    """The MLflow UI's page of one artifact of a run (an HTML report renders there)."""
    return f"{mlflow_run_url(run.info.experiment_id, run.info.run_id)}/artifacts/{artifact_path}"


def run_link(run: Any) -> dg.MetadataValue:
    """Link to an MLflow run (an mlflow.entities.Run or ActiveRun)."""
    return dg.MetadataValue.url(mlflow_run_url(run.info.experiment_id, run.info.run_id))
