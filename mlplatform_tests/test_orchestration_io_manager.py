"""The asset-value files: what goes in comes out, loads may write, writes are atomic."""

from __future__ import annotations

import errno
import mmap
import os
import pickle
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlplatform import config
from mlplatform.data import generate_market
from mlplatform.definitions import build_resources
from mlplatform.features import compute_features, outcomes
from mlplatform.orchestration import io_manager, resources
from mlplatform.orchestration.io_manager import MAGIC, PickleIOManager, read_value, write_value
from mlplatform.orchestration.resources import ValidationScheme


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return generate_market(seed=5, n_tickers=4, years=2, as_of="2024-06-28").prices


def test_values_come_back_equal(tmp_path: Path, prices: pd.DataFrame) -> None:
    features = compute_features(prices)  # float32 block, (date, ticker) MultiIndex
    values = {
        "prices": prices,  # object tickers, datetimes, float64 columns
        "features": features,
        "series": features.iloc[:, 0],
        "dict": {"version": "3", "windows": {"start": "2024-01-02"}, "rows": 12},
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "empty": pd.DataFrame({"x": np.array([], dtype=np.float64)}),
    }
    for name, value in values.items():
        path = tmp_path / name
        write_value(path, value)
        assert path.read_bytes().startswith(MAGIC)
        back = read_value(path)
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(back, value, check_exact=True)
        elif isinstance(value, pd.Series):
            pd.testing.assert_series_equal(back, value, check_exact=True)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(back, value)
        else:
            assert back == value


def test_a_loaded_value_may_be_changed_without_changing_the_file(
    tmp_path: Path, prices: pd.DataFrame
) -> None:
    path = tmp_path / "raw_prices"
    write_value(path, prices)
    stored = path.read_bytes()
    loaded = read_value(path)
    loaded.loc[0, "close"] = -1.0  # pandas writes into the mapped block
    loaded["close"].to_numpy()[1] = -2.0
    assert path.read_bytes() == stored
    pd.testing.assert_frame_equal(read_value(path), prices, check_exact=True)


def test_a_failed_write_keeps_the_previous_value_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tuned_params"
    write_value(path, {"n": 1})
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        write_value(path, {"n": 2, "unpicklable": lambda: None})  # fails before any file

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_manager.os, "replace", full_disk)  # fails after the temporary file
    with pytest.raises(OSError, match="No space"):
        write_value(path, {"n": 3})
    monkeypatch.undo()
    assert read_value(path) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["tuned_params"]  # no temporary file left


def test_mapped_windows_write_the_bytes_one_stream_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buffers cut by window edges, odd sizes, padding between them: the file is byte for byte
    the one written in one stream (a network folder's way), and reads back equal."""
    monkeypatch.setattr(io_manager, "_WINDOW", 16 * mmap.ALLOCATIONGRANULARITY)
    rng = np.random.default_rng(2)
    value = {
        "frame": pd.DataFrame(
            {
                "x": rng.random(50_001),
                "y": rng.random(50_001),
                "n": np.arange(50_001, dtype=np.int8),
            }
        ),
        "tiny": np.arange(3, dtype=np.int16),
        "text": "not a buffer",
    }
    write_value(tmp_path / "mapped", value)
    write_value(tmp_path / "streamed", value, memory_map=False)
    assert (tmp_path / "mapped").read_bytes() == (tmp_path / "streamed").read_bytes()
    loaded = read_value(tmp_path / "mapped")
    pd.testing.assert_frame_equal(loaded["frame"], value["frame"], check_exact=True)
    assert np.array_equal(loaded["tiny"], value["tiny"]) and loaded["text"] == "not a buffer"


def test_a_value_ending_in_an_empty_buffer_is_the_same_file_either_way(tmp_path: Path) -> None:
    value = [np.arange(10.0), np.empty(0)]  # padding before the empty buffer ends the file
    write_value(tmp_path / "mapped", value)
    write_value(tmp_path / "streamed", value, memory_map=False)
    assert (tmp_path / "mapped").read_bytes() == (tmp_path / "streamed").read_bytes()
    loaded = read_value(tmp_path / "streamed")
    assert np.array_equal(loaded[0], value[0]) and loaded[1].size == 0


def test_a_filesystem_that_cannot_map_gets_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = pd.DataFrame({"x": np.arange(1_000.0)})
    write_value(tmp_path / "streamed", value, memory_map=False)

    def no_mapping(*_: object, **__: object) -> None:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(io_manager.mmap, "mmap", no_mapping)
    write_value(tmp_path / "features", value)
    assert (tmp_path / "features").read_bytes() == (tmp_path / "streamed").read_bytes()


def _write_previous(tmp_path: Path) -> pd.DataFrame:
    previous = pd.DataFrame({"x": np.zeros(10)})
    write_value(tmp_path / "features", previous)
    return previous


def _fails_and_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, previous: pd.DataFrame, match: str
) -> None:
    """Writing a larger value fails (under the caller's patches) with `match`; the previous value
    stays whole and no temporary file is left."""
    with pytest.raises((OSError, RuntimeError), match=match):
        write_value(tmp_path / "features", pd.DataFrame({"x": np.ones(100_000)}))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(read_value(tmp_path / "features"), previous)
    assert [p.name for p in tmp_path.iterdir()] == ["features"]


def test_a_failure_while_copying_is_raised_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not as the BufferError of closing a mapping that something still exports."""
    previous = _write_previous(tmp_path)
    frombuffer = np.frombuffer

    def failing(buffer: object, *args: object, **kwargs: object) -> np.ndarray:
        if isinstance(buffer, mmap.mmap):
            return frombuffer(buffer, *args, **kwargs)
        raise RuntimeError("interrupted mid-copy")

    monkeypatch.setattr(io_manager.np, "frombuffer", failing)
    _fails_and_keeps(tmp_path, monkeypatch, previous, "mid-copy")


def test_a_full_disk_while_writing_buffers_is_an_error_and_keeps_the_previous_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks are reserved before the file is mapped: no space is an OSError, not a crash."""
    previous = _write_previous(tmp_path)

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_manager.os, "posix_fallocate", full_disk)
    _fails_and_keeps(tmp_path, monkeypatch, previous, "No space")


def test_a_killed_writers_temporary_file_goes_with_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "features"
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    prefix = io_manager._temporary_prefix(path)
    dead = tmp_path / f"{prefix}{int(finished.stdout)}-abc123"
    live = tmp_path / f"{prefix}{os.getpid()}-def456"  # a write in progress
    dead.write_bytes(b"half a value")
    live.write_bytes(b"half a value")
    write_value(path, {"n": 1})
    assert not dead.exists() and live.exists()
    assert path.stat().st_mode & 0o777 == io_manager._FILE_MODE  # other workers may read it


def test_values_in_a_shared_folder_are_read_not_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared folder (MLPLATFORM_IO_DIR, maybe NFS) is never mapped: another host's replace
    could pull a mapped file away mid-step."""
    path = tmp_path / "features"
    write_value(path, pd.DataFrame({"x": np.arange(10.0)}))

    def no_mapping(*args: object, **kwargs: object) -> None:
        raise AssertionError("mapped a value that should have been read")

    monkeypatch.setattr(io_manager.mmap, "mmap", no_mapping)
    write_value(path, pd.DataFrame({"x": np.arange(10.0)}), memory_map=False)  # nor written so
    frame = read_value(path, memory_map=False)
    frame["x"].to_numpy()[0] = 99.0  # writable, in memory
    assert read_value(path, memory_map=False)["x"].iloc[0] == 0.0
    with pytest.raises(AssertionError, match="mapped a value"):
        read_value(path)  # the default maps

    monkeypatch.setenv(config.IO_DIR_ENV, str(tmp_path / "shared"))
    assert build_resources()["io_manager"].memory_map is False
    monkeypatch.delenv(config.IO_DIR_ENV)
    assert build_resources()["io_manager"].memory_map is True


def test_object_storage_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    @dg.asset
    def frame() -> int:
        return 1

    with pytest.raises(dg.DagsterInvalidConfigError, match="base_dir 's3://bucket/io'"):
        dg.materialize(
            [frame], resources={"io_manager": PickleIOManager(base_dir="s3://bucket/io")}
        )


def test_a_value_replaced_while_loaded_stays_readable(tmp_path: Path) -> None:
    """Atomic replace: a step still holding the old arrays reads the old numbers."""
    path = tmp_path / "features"
    write_value(path, pd.DataFrame({"x": np.arange(100_000, dtype=np.float64)}))
    old = read_value(path)
    write_value(path, pd.DataFrame({"x": np.zeros(10, dtype=np.float64)}))
    assert old["x"].sum() == pytest.approx(np.arange(100_000).sum())
    assert len(read_value(path)) == 10


def test_plain_pickles_of_earlier_versions_still_load(tmp_path: Path, prices: pd.DataFrame) -> None:
    path = tmp_path / "raw_prices"
    with path.open("wb") as file:
        pickle.dump(prices, file, protocol=4)  # what Dagster's FilesystemIOManager writes
    pd.testing.assert_frame_equal(read_value(path), prices, check_exact=True)


def test_assets_pass_values_through_the_io_manager(tmp_path: Path) -> None:
    @dg.asset
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"a": np.arange(5.0)}, index=pd.Index(list("vwxyz"), name="k"))

    @dg.asset
    def total(frame: pd.DataFrame) -> float:
        frame["a"] *= 2  # the downstream step owns its copy
        return float(frame["a"].sum())

    result = dg.materialize(
        [frame, total], resources={"io_manager": PickleIOManager(base_dir=str(tmp_path))}
    )
    assert result.success and result.output_for_node("total") == 20.0
    assert read_value(tmp_path / "frame")["a"].sum() == 10.0


def test_stored_labels_serve_only_the_features_and_horizon_they_were_made_for(
    tmp_path: Path, prices: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the labels were made from travels with the stored frame. A step whose features or
    horizon differ (materialized alone after a data refresh) derives them again from the bars
    instead of training on stale labels; a matching step reads them as stored."""
    features = compute_features(prices)
    last_date = features.index.get_level_values("date") == features.index[-1][0]
    older = features[~last_date]  # the features before the latest refresh
    write_value(tmp_path / "labels", ValidationScheme(horizon=2).labels(older, prices))
    stored = read_value(tmp_path / "labels")
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
