"""The registry lock: every registry operation that changes an alias, a tag or an export holds
it, on this host (a flock on models/.lock) and, with a lock URL, on every host (mlplatform.locks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mlplatform import config, locks
from mlplatform.registry.errors import LockTimeout

LOCK_FILE = ".lock"


@contextlib.contextmanager
def registry_lock(
    export_root: Path,
    model_name: str,
    lock_url: str | None = None,
    timeout_s: float = config.PROMOTION_LOCK_TIMEOUT_S,
) -> Iterator[None]:
    """The lock every registry operation holds: one alias move (or registration) at a time. Its
    timeout is the registry's LockTimeout, a RegistryError, so a job reports a refused operation."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(
                locks.exclusive(Path(export_root) / LOCK_FILE, model_name, lock_url, timeout_s)
            )
        except locks.LockTimeout as exc:
            raise LockTimeout(str(exc)) from None
        yield
