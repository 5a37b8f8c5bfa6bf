"""The cross-host registry lock: one alias move (register, promote, rollback, repair) at a time.

The export's `flock` (export.py) serialises processes of one host only. With the MLflow backend on
Postgres (or MLPLATFORM_REGISTRY_LOCK_URL set), every alias move also holds a session-level
Postgres advisory lock keyed by the model name, so two hosts promoting at once take turns. The
lock lives on one open connection: a crashed holder's connection closes and Postgres releases it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from mlplatform import config
from mlplatform.registry.export import RegistryError

POLL_S = 0.05


class RegistryLockTimeout(RegistryError):
    """Another host held the registry lock for longer than the timeout."""


def lock_key(model_name: str) -> int:
    """A stable signed 32-bit key for the model (the second key of pg_try_advisory_lock)."""
    digest = hashlib.blake2b(model_name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def registry_lock(
    lock_url: str | None,
    model_name: str,
    timeout_s: float = config.PROMOTION_LOCK_TIMEOUT_S,
) -> Iterator[None]:
    """Hold the model's advisory lock on `lock_url` (a Postgres URL); no-op when None."""
    if not lock_url:
        yield
        return
    url = sa.engine.make_url(config.with_psycopg2(lock_url))
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"{config.REGISTRY_LOCK_URL_ENV} must be a PostgreSQL URL, got a "
            f"{url.get_backend_name()!r} URL"
        )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    keys = {"ns": config.REGISTRY_LOCK_NAMESPACE, "key": lock_key(model_name)}
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + timeout_s
            while not conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:ns, :key)"), keys
            ).scalar():
                if time.monotonic() >= deadline:
                    raise RegistryLockTimeout(
                        f"registry lock for {model_name!r} on {url.render_as_string()}: held by "
                        f"another promotion/rollback for over {timeout_s:.0f} s"
                    )
                time.sleep(POLL_S)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), keys)
    finally:
        engine.dispose()
