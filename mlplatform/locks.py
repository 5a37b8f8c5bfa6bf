"""Exclusive locks across processes and hosts, written once for the registry, the CLI and tuning.

Two primitives: an exclusive `flock` on a file (processes and threads of one host; the kernel
releases it when the holder dies) and a session-level Postgres advisory lock (every host that
reaches the database; a crashed holder's connection closes and Postgres releases it). Each waits
up to a timeout, then raises LockTimeout, or with None as long as it takes (an Optuna launch
must open its study, however long another launch holds the lock). `exclusive` holds the first
and, given a lock URL, the second: every registry write holds one, every retrain on one home
another. Dagster-free and below registry and training, which both use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from mlplatform import config

POLL_S = 0.05


class LockTimeout(RuntimeError):
    """Another operation held the lock for longer than the timeout."""


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for a name (the second key of pg_try_advisory_lock)."""
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _wait(take: Callable[[], bool], timeout_s: float, message: str) -> None:
    """Retry `take` until it succeeds: flock and Postgres can only refuse at once or block."""
    deadline = time.monotonic() + timeout_s
    while not take():
        if time.monotonic() >= deadline:
            raise LockTimeout(message)
        time.sleep(POLL_S)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def host_lock(path: Path, timeout_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created, with its folder): one holder on this host."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            message = f"{path}: another operation held it for over {timeout_s:.0f} s"
            _wait(lambda: _try_flock(fd), timeout_s, message)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def advisory_lock(
    url: sa.URL, namespace: int, key: int, name: str, timeout_s: float | None = None
) -> Iterator[None]:
    """Hold the advisory lock (namespace, key) of the Postgres database at `url`: one holder
    on every host; `name` says which lock a timeout was waiting for."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    keys = {"ns": namespace, "key": key}
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if timeout_s is None:
                conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :key)"), keys)
            else:
                take = sa.text("SELECT pg_try_advisory_lock(:ns, :key)")
                message = (
                    f"lock {name!r} on {url.render_as_string()}: held by another operation "
                    f"for over {timeout_s:.0f} s"
                )
                _wait(lambda: bool(conn.execute(take, keys).scalar()), timeout_s, message)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), keys)
    finally:
        engine.dispose()


@contextmanager
def exclusive(
    path: Path, name: str, lock_url: str | None, timeout_s: float | None
) -> Iterator[None]:
    """Hold this host's lock on `path`, then (with `lock_url`, the registry lock URL) every
    host's lock `name`, keyed in the registry's namespace."""
    url = sa.engine.make_url(config.with_psycopg2(lock_url)) if lock_url else None
    if url is not None and url.get_backend_name() != "postgresql":
        raise ValueError(
            f"{config.REGISTRY_LOCK_URL_ENV} must be a PostgreSQL URL, got a "
            f"{url.get_backend_name()!r} URL"
        )
    with host_lock(path, timeout_s):
        if url is None:
            yield
            return
        with advisory_lock(url, config.REGISTRY_LOCK_NAMESPACE, lock_key(name), name, timeout_s):
            yield
