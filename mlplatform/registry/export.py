"""The `models/` export: LightGBM native text + metadata + checksums, swapped in by rename.

Consumers that don't speak MLflow read `models/production/`. Each folder holds `model.txt`
(LightGBM's own text format, so loading it never executes code the way a pickle would),
`metadata.json` and `SHA256SUMS` (the `sha256sum` format, so `sha256sum -c SHA256SUMS` works in
the folder). A folder is written complete beside its destination and renamed into place, so a
reader sees the old folder or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb

from mlplatform import config

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
CHECKSUM_FILE = "SHA256SUMS"
LOCK_FILE = ".lock"
REQUIRED_FILES = (MODEL_FILE, METADATA_FILE)

# v<semver>[-r<registry version>]_<date>; folders written before the registry version was part
# of the name have no -r part and are still read.
_ARCHIVE_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-r(\d+))?_(\d{4}-\d{2}-\d{2})$")
_LEFTOVER_RE = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{12}$")


class RegistryError(RuntimeError):
    """Base error of the registry package."""


class ExportIntegrityError(RegistryError):
    """An export folder is missing a file or a file does not match its checksum."""

    def __init__(self, message: str, *, file: str | Path | None = None) -> None:
        super().__init__(message)
        self.file = str(file) if file is not None else None


class ExportLockTimeout(RegistryError):
    """Another promotion, rollback or registration held the export lock for too long."""


@contextlib.contextmanager
def export_lock(
    export_root: Path, timeout_s: float = config.PROMOTION_LOCK_TIMEOUT_S
) -> Iterator[Path]:
    """Exclusive `flock` on export_root/.lock: one writer of aliases + export at a time.

    flock locks belong to the open file description, so two threads of one process exclude
    each other as well as two processes. The lock is released when the process dies.
    """
    export_root = Path(export_root)
    export_root.mkdir(parents=True, exist_ok=True)
    path = export_root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ExportLockTimeout(
                        f"{path}: held by another promotion/rollback for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.02)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the renames durable; not every filesystem supports it.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_export(dest: Path, *, model_text: str, metadata: dict[str, Any]) -> Path:
    """Write model.txt, metadata.json and SHA256SUMS to `dest`, replacing it by rename.

    The new folder is complete (and fsynced) before it is renamed in. An existing `dest` is
    renamed aside first, then removed, so the only visible states are old, (briefly) absent,
    and new — never partial. Returns `dest`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = dest.parent / f".{dest.name}.tmp-{token}"
    old = dest.parent / f".{dest.name}.old-{token}"
    tmp.mkdir()
    try:
        files = {
            MODEL_FILE: model_text.encode("utf-8"),
            METADATA_FILE: (
                json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n"
            ).encode("utf-8"),
        }
        for fname, data in files.items():
            _write_file(tmp / fname, data)
        sums = "".join(
            f"{hashlib.sha256(data).hexdigest()}  {fname}\n"
            for fname, data in sorted(files.items())
        )
        _write_file(tmp / CHECKSUM_FILE, sums.encode("ascii"))
        _fsync_dir(tmp)
        if dest.exists():
            os.rename(dest, old)
            try:
                os.rename(tmp, dest)
            except BaseException:
                os.rename(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _parse_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise ExportIntegrityError(f"{path}: malformed line {lineno}", file=path)
        sums[parts[1].lstrip("*").strip()] = parts[0]
    return sums


def verify_export(directory: Path) -> dict[str, Any]:
    """Check every file against SHA256SUMS and return the metadata; raise naming the bad file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportIntegrityError(f"{directory}: export folder is missing", file=directory)
    sums_path = directory / CHECKSUM_FILE
    if not sums_path.is_file():
        raise ExportIntegrityError(f"{sums_path}: checksum file is missing", file=sums_path)
    sums = _parse_sums(sums_path)
    for fname in REQUIRED_FILES:
        if fname not in sums:
            raise ExportIntegrityError(
                f"{directory / fname}: not listed in {CHECKSUM_FILE}", file=directory / fname
            )
    for fname, expected in sums.items():
        path = directory / fname
        if not path.is_file():
            raise ExportIntegrityError(f"{path}: file is missing", file=path)
        actual = sha256_file(path)
        if actual != expected:
            raise ExportIntegrityError(
                f"{path}: checksum mismatch (expected {expected[:12]}…, found {actual[:12]}…)",
                file=path,
            )
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ExportIntegrityError(
            f"{directory / METADATA_FILE}: not valid JSON ({exc})", file=directory / METADATA_FILE
        ) from exc
    if not isinstance(metadata, dict):
        raise ExportIntegrityError(
            f"{directory / METADATA_FILE}: not a JSON object", file=directory / METADATA_FILE
        )
    return metadata


def export_matches(folder: Path, name: str, version: str | int) -> bool:
    """The folder verifies against its SHA256SUMS and its metadata names this version."""
    try:
        meta = verify_export(folder)
    except ExportIntegrityError:
        return False
    return meta.get("model_name") == name and meta.get("model_version") == str(version)


def load_export_booster(directory: Path) -> lgb.Booster:
    """Verify the folder, then parse model.txt with LightGBM's own text loader (never pickle)."""
    verify_export(directory)
    path = Path(directory) / MODEL_FILE
    try:
        return lgb.Booster(model_str=path.read_text(encoding="utf-8"))
    except lgb.basic.LightGBMError as exc:
        raise ExportIntegrityError(f"{path}: LightGBM cannot parse it ({exc})", file=path) from exc


def archive_dirname(
    semver: str, day: date | datetime | str, registry_version: str | int | None = None
) -> str:
    """`archive_dirname("1.2.0", date(2026, 11, 26), 5) == "v1.2.0-r5_2026-11-26"`.

    The registry version makes the name unique even if two versions ever shared a semver.
    """
    semver = semver.removeprefix("v")
    if not re.fullmatch(r"\d+\.\d+\.\d+", semver):
        raise ValueError(f"semver {semver!r} is not MAJOR.MINOR.PATCH")
    if isinstance(day, datetime):
        day = day.date()
    day_str = day if isinstance(day, str) else day.isoformat()
    date.fromisoformat(day_str)  # validates
    suffix = "" if registry_version is None else f"-r{int(registry_version)}"
    return f"v{semver}{suffix}_{day_str}"


def archive_registry_version(folder: Path) -> str | None:
    """The registry version in an archive folder's name, or None (older names lack it)."""
    match = _ARCHIVE_RE.match(Path(folder).name)
    return None if match is None or match.group(4) is None else match.group(4)


def _archive_sort_key(name: str) -> tuple[str, int, int, int, int] | None:
    match = _ARCHIVE_RE.match(name)
    if match is None:
        return None
    major, minor, patch, version, day = match.groups()
    return (day, int(major), int(minor), int(patch), int(version or 0))


def list_archive(archive_root: Path) -> list[Path]:
    """Archive folders, oldest first (by date in the name, then semver)."""
    archive_root = Path(archive_root)
    if not archive_root.is_dir():
        return []
    keyed = [
        (key, p)
        for p in archive_root.iterdir()
        if p.is_dir() and (key := _archive_sort_key(p.name)) is not None
    ]
    return [p for _, p in sorted(keyed)]


def prune_archive(
    archive_root: Path,
    keep: int = config.ARCHIVE_RETENTION,
    *,
    protect: tuple[Path, ...] | list[Path] = (),
) -> list[Path]:
    """Remove all but the newest `keep` archive folders; folders in `protect` always stay.

    Registry versions are never deleted, only their on-disk archive copies. Returns the removed
    folders.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    protected = {Path(p).resolve() for p in protect}
    folders = list_archive(archive_root)
    removed: list[Path] = []
    for path in folders[: max(len(folders) - keep, 0)]:
        if path.resolve() in protected:
            continue
        shutil.rmtree(path)
        removed.append(path)
    return removed


def leftovers(folder: Path) -> list[Path]:
    """The `.<name>.tmp-*` / `.<name>.old-*` entries an interrupted write left in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _LEFTOVER_RE.match(p.name))


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete them (only ever called under the registry lock, so no write is in progress)."""
    removed = leftovers(folder)
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


def remove_export(dest: Path) -> None:
    """Take an export folder away by rename first, so a reader never sees it half deleted."""
    dest = Path(dest)
    if not dest.exists():
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(dest, old)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dest.parent)
