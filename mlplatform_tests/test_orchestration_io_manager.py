"""The asset values: what goes in comes out exactly, a write replaces a value whole or not at
all, and the same manager serves a folder, a file:// URL and an object store (fsspec's memory)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from upath import UPath

from mlplatform import config
from mlplatform.data import generate_market
from mlplatform.definitions import build_resources
from mlplatform.features import compute_features, outcomes
from mlplatform.orchestration import resources
from mlplatform.orchestration.io_manager import AssetValueIOManager
from mlplatform.orchestration.resources import ValidationScheme
from mlplatform.training.dataset import DateWindow
from mlplatform.training.retrain import StagingModel

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return generate_market(seed=5, n_tickers=4, years=2, as_of="2024-06-28").prices


@pytest.fixture(scope="module")
def features(prices: pd.DataFrame) -> pd.DataFrame:
    return compute_features(prices)


def _manager(base_dir: str) -> dg.UPathIOManager:
    resource = AssetValueIOManager(base_dir=base_dir)
    return resource.create_io_manager(dg.build_init_resource_context())


def _store(manager: dg.UPathIOManager, name: str, value: object) -> None:
    manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey(name)), value)


def _load(manager: dg.UPathIOManager, name: str) -> object:
    return manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(name)))


def _assert_identical(back: object, value: object) -> None:
    """Equal values, dtypes, categories in order, index levels and codes, column order, attrs."""
    assert type(back) is type(value)
    if isinstance(value, pd.DataFrame | pd.Series):
        assert isinstance(back, pd.DataFrame | pd.Series)
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(back, value, check_exact=True)
            assert list(back.columns) == list(value.columns)
            assert back.dtypes.equals(value.dtypes)
        else:
            pd.testing.assert_series_equal(back, value, check_exact=True)
        assert back.attrs == value.attrs
        assert back.index.names == value.index.names
        if isinstance(value.index, pd.MultiIndex):
            assert isinstance(back.index, pd.MultiIndex)
            for mine, theirs in zip(back.index.levels, value.index.levels, strict=True):
                assert mine.equals(theirs) and mine.dtype == theirs.dtype
            for mine, theirs in zip(back.index.codes, value.index.codes, strict=True):
                np.testing.assert_array_equal(mine, theirs)
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        for name, dtype in frame.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                column = back[name] if isinstance(back, pd.DataFrame) else back
                assert column.cat.categories.equals(dtype.categories)
                assert column.cat.ordered == dtype.ordered
    elif isinstance(value, np.ndarray):
        assert isinstance(back, np.ndarray) and back.dtype == value.dtype
        np.testing.assert_array_equal(back, value)
    else:
        assert back == value


def _cases(prices: pd.DataFrame, features: pd.DataFrame) -> dict[str, tuple[object, bytes]]:
    """name: (value, how its file starts: a protocol-5 pickle)."""
    older = features[features.index.get_level_values("date") < features.index[-1][0]]
    labels = ValidationScheme(horizon=2).labels(older, prices)  # attrs; unused date levels
    filtered = prices[prices["ticker"] != "T0001"].reset_index(drop=True)
    with_timestamp = prices.head(3).copy()
    with_timestamp.attrs["as_of"] = pd.Timestamp("2024-06-28")  # JSON cannot hold it
    return {
        "prices": (prices, b"\x80\x05"),  # categorical tickers, datetimes, float64
        "prices without a ticker": (filtered, b"\x80\x05"),  # an unused category
        "features": (features, b"\x80\x05"),  # float32 block, (date, ticker) MultiIndex
        "labels": (labels, b"\x80\x05"),
        "series": (features.iloc[:, 0], b"\x80\x05"),
        "seconds": (pd.DataFrame({"t": prices["date"].to_numpy().astype("M8[s]")}), b"\x80\x05"),
        "text": (pd.DataFrame({"s": ["a", None, "c"]}), b"\x80\x05"),
        "timestamp attrs": (with_timestamp, b"\x80\x05"),
        "empty": (pd.DataFrame({"x": np.array([], dtype=np.float64)}), b"\x80\x05"),
        "dict": ({"version": "3", "windows": {"start": "2024-01-02"}, "rows": 12}, b"\x80\x05"),
        "dataclass": (DateWindow(date(2024, 1, 2), date(2024, 6, 28)), b"\x80\x05"),
        "fortran": (np.asfortranarray(np.arange(12.0).reshape(3, 4)), b"\x80\x05"),
        "none": (None, b"\x80\x05"),
    }


def test_values_come_back_identical(
    tmp_path: Path, prices: pd.DataFrame, features: pd.DataFrame
) -> None:
    """Every value comes back exactly: dtypes, categories, index levels, attrs."""
    manager = _manager(str(tmp_path))
    for name, (value, head) in _cases(prices, features).items():
        key = name.replace(" ", "_")
        _store(manager, key, value)
        assert (tmp_path / key).read_bytes().startswith(head), name
        _assert_identical(_load(manager, key), value)


def test_labels_keep_the_features_levels_so_they_match_by_position(
    tmp_path: Path, prices: pd.DataFrame, features: pd.DataFrame
) -> None:
    """The labels' index keeps the features' last dates in its levels (unused there), so the
    labels are matched to the features by position, not by keys."""
    labels = ValidationScheme(horizon=2).labels(features, prices)
    manager = _manager(str(tmp_path))
    _store(manager, "labels", labels)
    stored = _load(manager, "labels")
    assert isinstance(stored, pd.DataFrame)
    assert stored.index.levels[0].equals(features.index.levels[0])
    assert len(np.unique(stored.index.codes[0])) < len(features.index.levels[0])


def _writes_half_then_fails(whole: bytes) -> Callable[..., None]:
    """A stand-in for pickle.dump(value, file, protocol) that stops half way, like a full disk."""

    def writer(_value: object, file: IO[bytes], *_: object, **__: object) -> None:
        file.write(whole[: len(whole) // 2])
        raise OSError(28, "No space left on device")

    return writer


@pytest.mark.parametrize("base", ["folder", "memory"])
def test_a_failed_write_keeps_the_previous_value_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    """A writer that fails half way (a full disk) leaves the previous value, and no other file."""
    base_dir = str(tmp_path) if base == "folder" else f"memory://{uuid.uuid4().hex}/io"
    manager = _manager(base_dir)
    table = pd.DataFrame({"x": np.arange(100_000.0)})
    previous, larger = {"n": 1}, {"x": table}
    _store(manager, "value", previous)
    monkeypatch.setattr(pickle, "dump", _writes_half_then_fails(pickle.dumps(larger, 5)))
    with pytest.raises(OSError, match="No space"):
        _store(manager, "value", larger)
    monkeypatch.undo()
    _assert_identical(_load(manager, "value"), previous)
    assert [p.name for p in UPath(base_dir).iterdir()] == ["value"]


def test_a_value_that_cannot_be_pickled_or_renamed_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = _manager(str(tmp_path))
    _store(manager, "tuned_params", {"n": 1})
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        _store(manager, "tuned_params", {"n": 2, "unpicklable": lambda: None})

    def fails(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", fails)  # fails after the temporary file is whole
    with pytest.raises(OSError, match="No space"):
        _store(manager, "tuned_params", {"n": 3})
    monkeypatch.undo()
    assert _load(manager, "tuned_params") == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["tuned_params"]


# A writer process that dies (SIGKILL, no cleanup) half way through writing a large value.
_KILLED_WRITER = """
import os, pickle, signal, sys
import dagster as dg, numpy as np, pandas as pd
from upath import UPath
from mlplatform.orchestration.io_manager import AssetValueIOManager

base_dir = sys.argv[1]
value = {"x": np.arange(4_000_000.0)}
whole = pickle.dumps(value, protocol=5)

def dies_half_way(_value, file, *_, **__):
    file.write(whole[: len(whole) // 2])
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

pickle.dump = dies_half_way
manager = AssetValueIOManager(base_dir=base_dir).create_io_manager(dg.build_init_resource_context())
manager.dump_to_path(None, value, UPath(base_dir) / "value")
"""


def test_a_killed_writer_leaves_the_previous_value_loadable(tmp_path: Path) -> None:
    """Its temporary file stays behind, is never loaded, and the next write goes through."""
    manager = _manager(str(tmp_path))
    previous = {"n": 1}
    _store(manager, "value", previous)
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    (leftover,) = (p for p in tmp_path.iterdir() if p.name != "value")
    assert leftover.name.startswith(".value.") and leftover.stat().st_size > 1_000_000
    _assert_identical(_load(manager, "value"), previous)
    _store(manager, "value", {"n": 2})
    assert _load(manager, "value") == {"n": 2}


def test_value_files_are_readable_by_the_other_workers(tmp_path: Path) -> None:
    """Created as any file is (0o666 less the umask), not as a private temporary file."""
    umask = os.umask(0o022)
    os.umask(umask)
    manager = _manager(str(tmp_path))
    _store(manager, "value", {"n": 1})
    assert (tmp_path / "value").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_value_an_earlier_release_stored_asks_to_be_materialized_again(
    tmp_path: Path, prices: pd.DataFrame
) -> None:
    manager = _manager(str(tmp_path))
    (tmp_path / "features").write_bytes(b"mlplatform.pickle5.v1\n" + bytes(64))
    with pytest.raises(ValueError, match="materialize it again"):
        _load(manager, "features")
    # a value of a class that has moved since (the backtest report's, once)
    moved = b"\x80\x05cmlplatform.evaluation.walk_forward\nBacktestReport\n."
    (tmp_path / "backtest_report").write_bytes(moved)
    with pytest.raises(ValueError, match=r"earlier release stored .* materialize it again"):
        _load(manager, "backtest_report")
    with (tmp_path / "raw_prices").open("wb") as file:
        pickle.dump(prices, file, protocol=4)  # what Dagster's FilesystemIOManager writes
    _assert_identical(_load(manager, "raw_prices"), prices)
    # a step's dataclass input stored as the dict it was before
    _store(manager, "staging_model", {"version": "1", "windows": {}})
    typed = dg.build_input_context(
        asset_key=dg.AssetKey("staging_model"),
        dagster_type=dg.PythonObjectDagsterType(StagingModel),
    )
    with pytest.raises(ValueError, match=r"StagingModel .* materialize staging_model again"):
        manager.load_input(typed)
    assert _load(manager, "staging_model") == {"version": "1", "windows": {}}  # untyped: as stored


@pytest.mark.parametrize("where", ["folder", "file URL", "memory URL"])
def test_assets_pass_values_through_the_io_manager(tmp_path: Path, where: str) -> None:
    """Two assets materialized by Dagster: a table and a number, in a folder,
    under a file:// URL and in an object store (fsspec's in-memory one)."""
    base_dir = {
        "folder": str(tmp_path),
        "file URL": tmp_path.as_uri(),
        "memory URL": f"memory://{uuid.uuid4().hex}/io",
    }[where]

    @dg.asset
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"a": np.arange(5.0), "k": pd.Categorical(list("vwxyz"))})

    @dg.asset
    def total(frame: pd.DataFrame) -> float:
        frame["a"] *= 2  # the downstream step owns its copy
        return float(frame["a"].sum())

    io_manager = AssetValueIOManager(base_dir=base_dir)
    result = dg.materialize([frame, total], resources={"io_manager": io_manager})
    assert result.success and result.output_for_node("total") == 20.0
    stored = UPath(base_dir)
    assert stored.joinpath("frame").read_bytes().startswith(b"\x80\x05")
    assert pickle.loads(stored.joinpath("total").read_bytes()) == 20.0
    if where != "memory URL":
        assert (tmp_path / "frame").exists()
    manager = _manager(base_dir)
    _assert_identical(_load(manager, "frame"), frame())


def test_the_io_dir_setting_may_be_an_object_store_url(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLPLATFORM_IO_DIR, which every step worker reads, takes a URL as well as a folder."""
    url = f"memory://{uuid.uuid4().hex}/io"
    monkeypatch.setenv(config.IO_DIR_ENV, url)

    @dg.asset
    def tuned_params() -> dict[str, int]:
        return {"num_leaves": 31}

    io_manager = build_resources()["io_manager"]
    assert isinstance(io_manager, AssetValueIOManager)
    assert dg.materialize([tuned_params], resources={"io_manager": io_manager}).success
    assert pickle.loads(UPath(url).joinpath("tuned_params").read_bytes()) == {"num_leaves": 31}


def test_stored_labels_serve_only_the_features_and_horizon_they_were_made_for(
    tmp_path: Path, prices: pd.DataFrame, features: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the labels were made from travels with the stored frame. A step whose features or
    horizon differ (materialized alone after a data refresh) derives them again from the bars
    instead of training on stale labels; a matching step reads them as stored."""
    last_date = features.index.get_level_values("date") == features.index[-1][0]
    older = features[~last_date]  # the features before the latest refresh
    manager = _manager(str(tmp_path))
    _store(manager, "labels", ValidationScheme(horizon=2).labels(older, prices))
    stored = _load(manager, "labels")
    assert isinstance(stored, pd.DataFrame)
    assert stored.attrs["horizon"] == 2 and stored.attrs["feature_rows"] == len(older)
    assert stored.attrs["last_feature_row"] == "2024-06-27 T0003"

    for horizon, rows in ((2, features), (1, older), (2, older)):
        data = ValidationScheme(horizon=horizon).labelled(rows, stored, prices)
        truth = outcomes(prices, horizon)
        assert data.X.index.equals(rows.index[rows.index.isin(truth.index)])
        expected = truth.loc[data.X.index]
        np.testing.assert_array_equal(data.y.to_numpy(), expected["label"].to_numpy())
        for name in ("forward_return", "hold_return"):
            np.testing.assert_array_equal(data.returns_of(name), expected[name])

    monkeypatch.setattr(resources, "outcomes", None)  # a match reads the stored labels as they are
    ValidationScheme(horizon=2).labelled(older, stored, prices)
    with pytest.raises(TypeError):
        ValidationScheme(horizon=2).labelled(features, stored, prices)
