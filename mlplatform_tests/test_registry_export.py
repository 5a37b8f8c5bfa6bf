"""The models/ export: checksums, the atomic link swap, archive naming, the registry lock."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from mlplatform.registry import LockTimeout, StorageError
from mlplatform.registry import export as export_mod
from mlplatform.registry.export import (
    ExportIntegrityError,
    archive_dirname,
    leftovers,
    list_archive,
    load_export_booster,
    publish,
    verify_export,
    write_archive,
)
from mlplatform.registry.lock import registry_lock
from mlplatform_tests.registry_support import tiny_booster, tiny_frame


def _publish(link: Path, seed: int = 0, **meta: object) -> Path:
    booster = tiny_booster(seed)
    publish(link, booster.model_to_string(), {"seed": seed, **meta})
    return link


def test_publish_then_verify_round_trip(tmp_path: Path) -> None:
    link = _publish(tmp_path / "models" / "staging", model_version="3")
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))  # moves with its folder
    assert sorted(p.name for p in link.iterdir()) == ["SHA256SUMS", "metadata.json", "model.txt"]
    assert verify_export(link) == {"seed": 0, "model_version": "3"}
    lines = (link / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["metadata.json", "model.txt"]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum not installed")
def test_checksum_file_is_sha256sum_compatible(tmp_path: Path) -> None:
    link = _publish(tmp_path / "production")
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=link, check=True)


def test_a_reader_always_sees_a_complete_export(tmp_path: Path) -> None:
    """While the export is replaced again and again, every read finds a whole, verified folder."""
    link = _publish(tmp_path / "production", seed=0)
    seen: set[int] = set()
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(verify_export(link)["seed"])
            except BaseException as exc:
                failures.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    for seed in range(1, 30):
        _publish(link, seed=seed)
    stop.set()
    thread.join()
    assert failures == [] and len(seen) > 1


def test_the_folder_before_the_last_swap_stays_for_its_readers(tmp_path: Path) -> None:
    link = _publish(tmp_path / "production", seed=0)
    first = link.resolve()
    _publish(link, seed=1)
    assert verify_export(link)["seed"] == 1
    assert leftovers(tmp_path, {link.resolve()}) == []  # seed 0's folder may still be read
    _publish(link, seed=2)
    assert leftovers(tmp_path, {link.resolve()}) == [first]  # removed under the registry lock


def test_a_folder_of_the_old_layout_is_replaced_by_a_link(tmp_path: Path) -> None:
    old = tmp_path / "production"
    old.mkdir()
    (old / "model.txt").write_text("from an earlier version of the platform")
    _publish(old, seed=2)
    assert old.is_symlink() and verify_export(old)["seed"] == 2


def test_failed_write_keeps_the_old_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = _publish(tmp_path / "production", seed=0)
    before = {p.name: p.read_bytes() for p in link.iterdir()}
    calls = {"n": 0}
    real = export_mod._write_file

    def failing(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(export_mod, "_write_file", failing)
    with pytest.raises(StorageError, match=f"cannot write {tmp_path}: No space left on device"):
        _publish(link, seed=1)
    assert {p.name: p.read_bytes() for p in link.iterdir()} == before
    assert leftovers(tmp_path, {link.resolve()}) == []  # the half-written folder is gone


def test_a_read_only_export_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read-only mount answers (EROFS; as root a chmod would not stop the write)."""
    root = tmp_path / "models"
    root.mkdir()

    def read_only(path: object, *_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(export_mod.Path, "mkdir", read_only)
    with pytest.raises(StorageError, match=f"cannot write {root}: Read-only file system") as info:
        _publish(root / "production")
    assert "make repair" in str(info.value)


def test_verify_names_the_tampered_file(tmp_path: Path) -> None:
    link = _publish(tmp_path / "production")
    (link / "model.txt").write_text((link / "model.txt").read_text() + "\n# edited\n")
    with pytest.raises(ExportIntegrityError, match=r"model\.txt: checksum mismatch") as info:
        verify_export(link)
    assert info.value.file == str(link.resolve() / "model.txt")


@pytest.mark.parametrize("missing", ["model.txt", "metadata.json", "SHA256SUMS"])
def test_verify_names_the_missing_file(tmp_path: Path, missing: str) -> None:
    link = _publish(tmp_path / "production")
    (link / missing).unlink()
    with pytest.raises(ExportIntegrityError, match=missing):
        verify_export(link)


def test_verify_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportIntegrityError, match="missing"):
        verify_export(tmp_path / "nowhere")


def test_load_export_booster_predicts_like_the_original(tmp_path: Path) -> None:
    booster = tiny_booster(3)
    dest = write_archive(tmp_path / "v1.0.0-r1_2026-01-02", booster.model_to_string(), {})
    X, _ = tiny_frame(9, rows=20)
    np.testing.assert_allclose(load_export_booster(dest).predict(X), booster.predict(X))


def test_archive_dirname() -> None:
    assert archive_dirname("1.2.0", date(2026, 11, 26)) == "v1.2.0_2026-11-26"
    assert archive_dirname("v1.2.0", "2026-11-26") == "v1.2.0_2026-11-26"
    assert archive_dirname("1.1.2", "2026-11-30", 5) == "v1.1.2-r5_2026-11-30"
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        archive_dirname("1.2", date(2026, 11, 26))


def test_archive_listing_orders_by_date_then_semver(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for name in ("v1.0.0_2026-01-05", "v1.10.0_2026-02-01", "v1.2.0_2026-02-01", "other"):
        (root / name).mkdir(parents=True)
    assert [p.name for p in list_archive(root)] == [
        "v1.0.0_2026-01-05",
        "v1.2.0_2026-02-01",
        "v1.10.0_2026-02-01",
    ]


def test_the_registry_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with registry_lock(tmp_path, "model", timeout_s=0.1):
                pass
        except BaseException as exc:
            errors.append(exc)

    with registry_lock(tmp_path, "model"):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], LockTimeout)
    with registry_lock(tmp_path, "model", timeout_s=0.1):  # released afterwards
        pass
