"""Where asset values live between steps: one pickle (protocol 5) per value under a folder or
object-store URL, each replaced whole.

Not Parquet: at 2,000 tickers it wrote and read the prices 1-2 s slower than a pickle (about a
quarter of the daily refresh), the features 5-10 s slower, and it rebuilds an index from its
values, dropping the unused level values by which the labels are matched to the features by
position. The platform's file for other tools is the prediction log, not these values.

In a folder (local, or shared by the workers over NFS) a value is written to a temporary file
beside its place, `.<name>.<random>.tmp`, and renamed over it: a process killed mid-write leaves
the previous value whole, and its temporary file, which is never loaded, behind. On an object
store the value is sent in one PUT, which the store applies whole or not at all. Nothing is
fsynced: an operating-system crash can lose the latest values, which the next run recomputes.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import uuid
from pathlib import Path
from typing import IO

import dagster as dg
import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from pydantic import Field
from upath import UPath

from mlplatform.serving import PredictionLog


def _write(value: object, file: IO[bytes]) -> None:
    pickle.dump(value, file, protocol=5)


def _read(file: IO[bytes], path: UPath) -> object:
    if not file.read(1).startswith(b"\x80"):  # every pickle since protocol 2
        raise ValueError(
            f"{path} is not a pickle (a value an earlier release stored in its own format?): "
            "materialize it again"
        )
    file.seek(0)
    try:
        return pickle.load(file)
    except (ModuleNotFoundError, AttributeError) as exc:  # a class that has moved since
        raise ValueError(
            f"{path} holds a value an earlier release stored ({exc}): materialize it again"
        ) from exc


def _expect(context: dg.InputContext, value: object, path: UPath) -> None:
    """A step's dataclass input (TunedParams, StagingModel, ...) holds that dataclass, not the
    dict an earlier release stored in its place."""
    try:
        expected = context.dagster_type.typing_type
    except dg.DagsterInvariantViolationError:  # loaded without a type: nothing to compare
        return
    typed = isinstance(expected, type) and dataclasses.is_dataclass(expected)
    if typed and not isinstance(value, expected):
        upstream = context.asset_key.to_user_string() if context.has_asset_key else path.name
        raise ValueError(
            f"{path} holds a {type(value).__name__}, not the {expected.__name__} this step "
            f"reads (a value an earlier release stored?): materialize {upstream} again"
        )


def _in_folder(path: UPath) -> Path | None:
    """The file of `path` in a local or mounted folder; None on an object store."""
    return Path(path.path) if isinstance(path.fs, LocalFileSystem) else None


class _AssetValues(dg.UPathIOManager):
    extension = ""  # the file names Dagster's FilesystemIOManager gives

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        file = _in_folder(path)
        if file is None:
            data = io.BytesIO()
            _write(obj, data)
            # One PUT: an object store never shows a partly written object, so no rename.
            path.fs.pipe_file(path.path, data.getvalue())
            return
        temporary = file.with_name(f".{file.name}.{uuid.uuid4().hex}.tmp")
        try:
            with temporary.open("xb") as out:  # 0o666 less the umask: other workers read it
                _write(obj, out)
            temporary.replace(file)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        with (_in_folder(path) or path).open("rb") as data:
            value = _read(data, path)
        _expect(context, value, path)
        return value


class AssetValueIOManager(dg.ConfigurableIOManagerFactory):
    """Asset values as pickles under one folder or object-store URL, each replaced whole."""

    base_dir: str = Field(
        description="Folder or object-store URL of the asset values (a path, file://, s3://, "
        "gs://, memory://); every worker reaches it when steps run on other hosts."
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        return _AssetValues(base_path=UPath(self.base_dir))


class PredictionLogIOManager(dg.ConfigurableIOManager):
    """The predictions asset's partitions as the prediction log's files (Parquet per date),
    which other tools read without Dagster."""

    root: str = Field(description="Folder or object-store URL of the prediction log.")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        PredictionLog(self.root).write(context.partition_key, obj)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return PredictionLog(self.root).read(context.partition_key)
