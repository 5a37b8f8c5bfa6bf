"""The models/ export: checksums, atomic replacement, archive naming and pruning, the lock."""

from __future__ import annotations

import shutil
import subprocess
import threading
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from mlplatform.registry import export as export_mod
from mlplatform.registry.export import (
    ExportIntegrityError,
    ExportLockTimeout,
    archive_dirname,
    export_lock,
    list_archive,
    load_export_booster,
    prune_archive,
    verify_export,
    write_export,
)
from mlplatform_tests.registry_support import tiny_booster, tiny_frame


def _write(dest: Path, seed: int = 0, **meta: object) -> Path:
    booster = tiny_booster(seed)
    return write_export(dest, model_text=booster.model_to_string(), metadata={"seed": seed, **meta})


def test_write_then_verify_round_trip(tmp_path: Path) -> None:
    dest = _write(tmp_path / "models" / "staging", model_version="3")
    assert sorted(p.name for p in dest.iterdir()) == ["SHA256SUMS", "metadata.json", "model.txt"]
    assert verify_export(dest) == {"seed": 0, "model_version": "3"}
    lines = (dest / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["metadata.json", "model.txt"]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum not installed")
def test_checksum_file_is_sha256sum_compatible(tmp_path: Path) -> None:
    dest = _write(tmp_path / "production")
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=dest, check=True)


def test_replacing_leaves_only_the_new_folder(tmp_path: Path) -> None:
    dest = _write(tmp_path / "production", seed=0)
    _write(dest, seed=1)
    assert verify_export(dest)["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["production"]  # no .tmp-/.old- leftovers


def test_failed_write_keeps_the_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = _write(tmp_path / "production", seed=0)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    calls = {"n": 0}
    real = export_mod._write_file

    def failing(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(export_mod, "_write_file", failing)
    with pytest.raises(OSError, match="disk full"):
        _write(dest, seed=1)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["production"]


def test_verify_names_the_tampered_file(tmp_path: Path) -> None:
    dest = _write(tmp_path / "production")
    (dest / "model.txt").write_text((dest / "model.txt").read_text() + "\n# edited\n")
    with pytest.raises(ExportIntegrityError, match=r"model\.txt: checksum mismatch") as info:
        verify_export(dest)
    assert info.value.file == str(dest / "model.txt")


@pytest.mark.parametrize("missing", ["model.txt", "metadata.json", "SHA256SUMS"])
def test_verify_names_the_missing_file(tmp_path: Path, missing: str) -> None:
    dest = _write(tmp_path / "production")
    (dest / missing).unlink()
    with pytest.raises(ExportIntegrityError, match=missing):
        verify_export(dest)


def test_verify_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportIntegrityError, match="missing"):
        verify_export(tmp_path / "nowhere")


def test_load_export_booster_predicts_like_the_original(tmp_path: Path) -> None:
    booster = tiny_booster(3)
    dest = write_export(tmp_path / "p", model_text=booster.model_to_string(), metadata={})
    X, _ = tiny_frame(9, rows=20)
    np.testing.assert_allclose(load_export_booster(dest).predict(X), booster.predict(X))


def test_archive_dirname() -> None:
    assert archive_dirname("1.2.0", date(2026, 11, 26)) == "v1.2.0_2026-11-26"
    assert archive_dirname("v1.2.0", "2026-11-26") == "v1.2.0_2026-11-26"
    assert archive_dirname("1.1.2", "2026-11-30", 5) == "v1.1.2-r5_2026-11-30"
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        archive_dirname("1.2", date(2026, 11, 26))


def test_prune_keeps_newest_and_protected(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    names = [
        "v1.0.0_2026-01-05",
        "v1.10.0_2026-02-01",
        "v1.2.0_2026-02-01",
        "v2.0.0_2026-03-01",
        "v2.0.1_2026-03-01",
    ]
    for name in names:
        (root / name).mkdir(parents=True)
    (root / "not-an-archive").mkdir()
    assert [p.name for p in list_archive(root)] == [
        "v1.0.0_2026-01-05",
        "v1.2.0_2026-02-01",
        "v1.10.0_2026-02-01",
        "v2.0.0_2026-03-01",
        "v2.0.1_2026-03-01",
    ]
    removed = prune_archive(root, keep=2, protect=[root / "v1.0.0_2026-01-05"])
    assert sorted(p.name for p in removed) == ["v1.10.0_2026-02-01", "v1.2.0_2026-02-01"]
    assert sorted(p.name for p in root.iterdir()) == [
        "not-an-archive",
        "v1.0.0_2026-01-05",
        "v2.0.0_2026-03-01",
        "v2.0.1_2026-03-01",
    ]


def test_export_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with export_lock(tmp_path, timeout_s=0.1):
                pass
        except BaseException as exc:
            errors.append(exc)

    with export_lock(tmp_path):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], ExportLockTimeout)
    with export_lock(tmp_path, timeout_s=0.1):  # released afterwards
        pass
