"""The intent journal: what a registry-changing operation is about to do, written before it does it.

register, promote and rollback each write one record (`<export_root>/.intent.json`) after
validating their inputs and before touching an alias, a tag or an export, and delete it once the
registry and every export agree again. A record found later means its process died (or could not
undo its own failure): the next registry command, or `repair`, rolls it forward or back
(mlplatform.registry.recovery).

Why a file beside the export and not a registered-model tag: it must be writable exactly when the
registry is failing (a locked or read-only MLflow database), it is guarded by the same lock as the
aliases and exports it protects (so at most one record exists), and a rename makes it atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.registry.export import RegistryError, export_lock, now_iso

INTENT_FILE = ".intent.json"


class UnfinishedOperation(RegistryError):
    """An operation failed and could not undo itself: its intent is kept for `repair`."""


@dataclass
class Intent:
    """One unfinished operation: `op` is register, promote or rollback; `data` its own facts."""

    op: str
    name: str
    data: dict[str, Any]
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: str = field(default_factory=now_iso)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)


def intent_path(export_root: Path) -> Path:
    return Path(export_root) / INTENT_FILE


def write_intent(export_root: Path, intent: Intent) -> None:
    """Replace the record atomically: temp file, fsync, rename, fsync of the folder."""
    path = intent_path(export_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{INTENT_FILE}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(asdict(intent), fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_intent(export_root: Path) -> Intent | None:
    path = intent_path(export_root)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Intent(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:  # a rename never tears it: this is a hand edit
        raise RegistryError(f"{path}: unreadable intent record ({exc}); inspect it") from exc


def clear_intent(export_root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        intent_path(export_root).unlink()


@contextlib.contextmanager
def registry_lock(export_root: Path) -> Iterator[None]:
    """The one lock every registry change holds. Swap its body for a cross-host lock (issue 10);
    today it is a `flock` on export_root/.lock, held across processes on one host."""
    with export_lock(Path(export_root)):
        yield
