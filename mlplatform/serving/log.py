"""The prediction log: one Parquet file per scored date under one folder or object-store URL,
which pandas, DuckDB and Polars read without Dagster (e.g. `pd.read_parquet(folder)`).

Writing a date again replaces its file whole: in a folder through a temporary file renamed over
it, on an object store in one PUT. A corrupt or half-written file is never appended to; it is
rewritten by scoring its date again.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from upath import UPath


@dataclass(frozen=True)
class PredictionLog:
    root: str  # a folder or an fsspec URL (s3://, gs://, memory://)

    def path(self, date: str) -> UPath:
        return UPath(self.root) / f"{date}.parquet"

    def write(self, date: str, frame: pd.DataFrame) -> UPath:
        path = self.path(date)
        data = io.BytesIO()
        frame.to_parquet(data, index=False)
        if isinstance(path.fs, LocalFileSystem):
            file = Path(path.path)
            file.parent.mkdir(parents=True, exist_ok=True)
            temporary = file.with_name(f".{file.name}.{uuid.uuid4().hex}.tmp")
            try:
                temporary.write_bytes(data.getvalue())
                temporary.replace(file)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        else:  # one PUT: an object store never shows a partly written object
            path.fs.pipe_file(path.path, data.getvalue())
        return path

    def read(self, date: str) -> pd.DataFrame:
        with self.path(date).open("rb") as file:
            return pd.read_parquet(file)

    def dates(self) -> list[str]:
        root = UPath(self.root)
        if not root.exists():
            return []
        return sorted(p.name.removesuffix(".parquet") for p in root.glob("*.parquet"))
