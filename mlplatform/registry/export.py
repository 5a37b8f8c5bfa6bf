"""The `models/` export for consumers that don't speak MLflow, and how it is swapped.

Each export folder holds `model.txt` (LightGBM's own text format, so loading it never executes
code the way a pickle would), `metadata.json` and `SHA256SUMS` (the `sha256sum` format, so
`sha256sum -c SHA256SUMS` works in the folder). `models/production` and `models/staging` are
symbolic links to complete folders under `models/.exports/`: a new folder is written and fsynced
first, then the link is replaced by one rename, so a consumer always sees a complete export, the
old one or the new one, never a half-written or missing one. Archive folders
(`models/archive/v<semver>-r<version>_<date>/`) are written beside their place and renamed in.
Whatever an interrupted write leaves (`.exports/` folders no link names, temporary links and
folders) is removed by the next registry command, under the registry lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb

from mlplatform.registry.errors import ExportIntegrityError, StorageError

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"  # rendered by registry.card
CHECKSUM_FILE = "SHA256SUMS"
REQUIRED_FILES = (MODEL_FILE, METADATA_FILE)
BUILDS_DIR = ".exports"
ARCHIVE_DIR = "archive"

# v<semver>[-r<registry version>]_<date>; folders named before the registry version was part
# of the name have no -r part and are still read.
_ARCHIVE_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-r(\d+))?_(\d{4}-\d{2}-\d{2})$")
_TEMPORARY_RE = re.compile(r"^\..+\.(tmp|old|link)-[0-9a-f]{12}$")


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes renames durable; not every filesystem supports it.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fill(folder: Path, model_text: str, metadata: dict[str, Any], card: str | None) -> None:
    """model.txt, metadata.json, the model card and SHA256SUMS into a new, empty folder,
    fsynced."""
    files = {
        MODEL_FILE: model_text.encode("utf-8"),
        METADATA_FILE: (json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n").encode(
            "utf-8"
        ),
    }
    if card is not None:
        files[CARD_FILE] = card.encode("utf-8")
    for name, data in files.items():
        _write_file(folder / name, data)
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    )
    _write_file(folder / CHECKSUM_FILE, sums.encode("ascii"))
    _fsync_dir(folder)


@contextlib.contextmanager
def _disk(path: Path) -> Iterator[None]:
    """OSErrors of the disk (read-only, full) as a StorageError naming the path."""
    try:
        yield
    except OSError as exc:
        raise StorageError.of(exc, path) from exc


def publish(
    link: Path, model_text: str, metadata: dict[str, Any], *, card: str | None = None
) -> Path:
    """Write a complete export folder under `.exports/` and point `link` at it with one rename.
    Returns the folder. A real folder left at `link` by an earlier layout is moved aside first
    (once: the only moment `link` is briefly absent)."""
    root = link.parent
    builds = root / BUILDS_DIR
    with _disk(root):
        builds.mkdir(parents=True, exist_ok=True)
        token = _token()
        folder = builds / f"{link.name}-{token}"
        tmp = builds / f".{link.name}.tmp-{token}"
        tmp.mkdir()
        try:
            _fill(tmp, model_text, metadata, card)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        pointer = root / f".{link.name}.link-{token}"
        os.symlink(os.path.relpath(folder, root), pointer)
        try:
            if link.is_dir() and not link.is_symlink():
                os.rename(link, root / f".{link.name}.old-{token}")
            os.replace(pointer, link)
        except BaseException:
            pointer.unlink(missing_ok=True)
            raise
        _fsync_dir(root)
    return folder


def unpublish(link: Path) -> bool:
    """Remove the export at `link` (its alias is unset); True when there was one."""
    if link.is_symlink():
        link.unlink()
        return True
    if link.exists():
        old = link.parent / f".{link.name}.old-{_token()}"
        os.rename(link, old)
        shutil.rmtree(old, ignore_errors=True)
        return True
    return False


def write_archive(
    dest: Path, model_text: str, metadata: dict[str, Any], *, card: str | None = None
) -> Path:
    """An archive folder, written beside `dest` and renamed into place (a corrupt one it
    replaces is renamed aside first, then removed)."""
    with _disk(dest.parent):
        dest.parent.mkdir(parents=True, exist_ok=True)
        token = _token()
        tmp = dest.parent / f".{dest.name}.tmp-{token}"
        tmp.mkdir()
        try:
            _fill(tmp, model_text, metadata, card)
            if dest.exists():
                old = dest.parent / f".{dest.name}.old-{token}"
                os.rename(dest, old)
                shutil.rmtree(old, ignore_errors=True)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(dest.parent)
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
    """Check every file against SHA256SUMS and return the metadata; raise naming the bad file.
    A link is resolved once, so every file is read from the same folder even if the link is
    swapped meanwhile."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise ExportIntegrityError(f"{directory}: export folder is missing", file=directory)
    sums_path = directory / CHECKSUM_FILE
    if not sums_path.is_file():
        raise ExportIntegrityError(f"{sums_path}: checksum file is missing", file=sums_path)
    try:
        sums = _parse_sums(sums_path)
    except UnicodeDecodeError as exc:
        raise ExportIntegrityError(f"{sums_path}: not a checksum file", file=sums_path) from exc
    for name in REQUIRED_FILES:
        if name not in sums:
            raise ExportIntegrityError(
                f"{directory / name}: not listed in {CHECKSUM_FILE}", file=directory / name
            )
    for name, expected in sums.items():
        path = directory / name
        if not path.is_file():
            raise ExportIntegrityError(f"{path}: file is missing", file=path)
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
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


def load_export_booster(directory: Path) -> lgb.Booster:
    """Verify the folder, then parse model.txt with LightGBM's own text loader (never pickle)."""
    directory = Path(directory).resolve()
    verify_export(directory)
    path = directory / MODEL_FILE
    try:
        return lgb.Booster(model_str=path.read_text(encoding="utf-8"))
    except lgb.basic.LightGBMError as exc:
        raise ExportIntegrityError(f"{path}: LightGBM cannot parse it ({exc})", file=path) from exc


def intact_model(folder: Path, name: str, version: str) -> str | None:
    """The model text of an export folder of this version that verifies and parses, else None."""
    folder = Path(folder).resolve()
    try:
        meta = verify_export(folder)
        load_export_booster(folder)
    except (ExportIntegrityError, OSError):
        return None
    if meta.get("model_name") != name or str(meta.get("model_version")) != str(version):
        return None
    return (Path(folder) / MODEL_FILE).read_text(encoding="utf-8")


def archive_dirname(
    semver: str, day: date | datetime | str, registry_version: str | int | None = None
) -> str:
    """`archive_dirname("1.2.0", date(2026, 11, 26), 5) == "v1.2.0-r5_2026-11-26"`."""
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


def list_archive(archive_root: Path) -> list[Path]:
    """Archive folders, oldest first (by date in the name, then semver)."""
    if not archive_root.is_dir():
        return []
    keyed = []
    for path in archive_root.iterdir():
        match = _ARCHIVE_RE.match(path.name)
        if path.is_dir() and match:
            major, minor, patch, version, day = match.groups()
            key = (day, int(major), int(minor), int(patch), int(version or 0))
            keyed.append((key, path))
    return [path for _, path in sorted(keyed)]


def leftovers(export_root: Path, published: set[Path]) -> list[Path]:
    """What interrupted writes left, and exports nobody should start reading: temporary
    folders and links, and `.exports/` folders that no link points at (`published`: the folders
    the links resolve to) except the newest such folder of each link, the one it pointed at
    before its last swap, which a reader who opened it just before may still be reading."""
    found = []
    for folder in (export_root, export_root / ARCHIVE_DIR, export_root / BUILDS_DIR):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if _TEMPORARY_RE.match(p.name)]
    builds = export_root / BUILDS_DIR
    unlinked: dict[str, list[Path]] = {}
    if builds.is_dir():
        for path in builds.iterdir():
            if path not in found and path.resolve() not in published:
                unlinked.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    for paths in unlinked.values():
        paths.sort(key=lambda p: p.stat().st_mtime_ns)
        found += paths[:-1]
    return sorted(found)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
