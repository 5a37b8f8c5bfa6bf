"""Exclusive locks across processes and hosts, and the one registry lock built on them.

Two layers behind one function: an exclusive `flock` on a file (processes and threads of one
host; released when the process dies) and, when a lock URL is given (a Postgres database every
host reaches), a session-level advisory lock keyed by a name, so hosts take turns too; a crashed
holder's connection closes and Postgres releases it. Every registry operation that changes an
alias, a tag or an export holds `registry_lock`; every retrain on one home holds another.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from mlplatform import config
from mlplatform.registry.errors import LockTimeout

POLL_S = 0.05
LOCK_FILE = ".lock"


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for a name (the second key of pg_try_advisory_lock)."""
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def _host_lock(path: Path, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{path}: another operation held it for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _cross_host_lock(lock_url: str, name: str, timeout_s: float) -> Iterator[None]:
    url = sa.engine.make_url(config.with_psycopg2(lock_url))
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"{config.REGISTRY_LOCK_URL_ENV} must be a PostgreSQL URL, got a "
            f"{url.get_backend_name()!r} URL"
        )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    keys = {"ns": config.REGISTRY_LOCK_NAMESPACE, "key": lock_key(name)}
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + timeout_s
            while not conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:ns, :key)"), keys
            ).scalar():
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"lock {name!r} on {url.render_as_string()}: held by another operation "
                        f"for over {timeout_s:.0f} s"
                    )
                time.sleep(POLL_S)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), keys)
    finally:
        engine.dispose()


@contextmanager
def exclusive(path: Path, name: str, lock_url: str | None, timeout_s: float) -> Iterator[None]:
    """Hold this host's lock on `path`, then (with `lock_url`) every host's lock `name`."""
    with _host_lock(Path(path), timeout_s):
        if not lock_url:
            yield
            return
        with _cross_host_lock(lock_url, name, timeout_s):
            yield


def registry_lock(
    export_root: Path,
    model_name: str,
    lock_url: str | None = None,
    timeout_s: float = config.PROMOTION_LOCK_TIMEOUT_S,
) -> contextlib.AbstractContextManager[None]:
    """The lock every registry operation holds: one alias move (or registration) at a time."""
    return exclusive(Path(export_root) / LOCK_FILE, model_name, lock_url, timeout_s)
