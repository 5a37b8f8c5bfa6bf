"""The Optuna storage behind a URL, and the lock under which a launch opens a study in it.

Two hosts starting together on a new Optuna database both ran Optuna's schema creation (one
crashed with UniqueViolation while creating its tables), and both read the launch counter that
gives each launch its sampler seeds before either wrote it (two launches, one seed, duplicated
trials). Opening a study (schema, create-or-load, launch counter, first trial) therefore happens
under a lock every launch on that storage can see:

- PostgreSQL: a session-level advisory lock in the storage's own database (the server releases it
  when the holder's connection dies, so a crashed host never wedges the others);
- SQLite file and journal file: an flock on a sibling `.lock` file (one host, like the file);
- journal on Redis: a Redis lock with a lease (a crashed holder's lease runs out).

Other SQL servers get no cross-host lock: the platform's scale-out storage is Postgres.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import redis
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend
from sqlalchemy.engine import make_url

from mlplatform import config
from mlplatform.locks import advisory_lock, host_lock

JOURNAL_FILE = "journal+file://"  # journal+file:///abs/path/studies.log (one host, or NFS)
JOURNAL_REDIS = "journal+redis://"  # journal+redis://host:6379/db (many hosts, no SQL server)
REDIS_LOCK_KEY = "mlplatform:optuna:launch-lock"
REDIS_LEASE_S = 120  # far longer than opening a study takes; a dead holder's lock ends with it
LAUNCH_LOCK_KEY = 1  # the advisory lock's second key, in config.TUNING.launch_lock_namespace


def _journal_path(storage_url: str) -> Path:
    path = Path(storage_url[len(JOURNAL_FILE) :]).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{storage_url!r}: a journal file needs an absolute path (///)")
    return path


def make_storage(
    storage_url: str, *, heartbeat_interval_s: int = config.TUNING.heartbeat_interval_s
) -> optuna.storages.BaseStorage:
    """The Optuna storage for a URL: any SQLAlchemy URL (RDB), `journal+file:///path` or
    `journal+redis://host:port/db` (JournalStorage); creates the folder of a sqlite or journal file.

    RDB storages get a heartbeat: a resumed or parallel study fails the RUNNING trials of a crashed
    worker and re-queues their parameters (RetryHeartbeatStaleTrialCallback, Optuna 5's name for
    RetryFailedTrialCallback) instead of leaving them running forever.
    """
    if storage_url.startswith(JOURNAL_FILE):
        path = _journal_path(storage_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if storage_url.startswith(JOURNAL_REDIS):
        with warnings.catch_warnings():  # "experimental" since Optuna 3.1
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            backend = JournalRedisBackend("redis://" + storage_url[len(JOURNAL_REDIS) :])
        return optuna.storages.JournalStorage(backend)
    storage_url = config.with_psycopg2(storage_url)
    url = make_url(storage_url)
    engine_kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}  # wait on a lock instead of failing
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            storage_url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval_s,
            grace_period=3 * heartbeat_interval_s,
            heartbeat_stale_trial_callback=retry_callback(),
        )


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Re-queues a lost trial's parameters (at most config.TUNING.failed_trial_retries times)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=config.TUNING.failed_trial_retries
        )


@contextlib.contextmanager
def launch_lock(storage_url: str) -> Iterator[None]:
    """Hold the storage's launch lock (which lock: see the module docstring)."""
    if storage_url.startswith(JOURNAL_FILE):
        with host_lock(Path(f"{_journal_path(storage_url)}.lock")):
            yield
        return
    if storage_url.startswith(JOURNAL_REDIS):
        client = redis.Redis.from_url("redis://" + storage_url[len(JOURNAL_REDIS) :])
        try:
            with client.lock(REDIS_LOCK_KEY, timeout=REDIS_LEASE_S):
                yield
        finally:
            client.close()
        return
    url = make_url(config.with_psycopg2(storage_url))
    if url.get_backend_name() == "postgresql":
        namespace = config.TUNING.launch_lock_namespace
        with advisory_lock(url, namespace, LAUNCH_LOCK_KEY, "optuna launch"):
            yield
    elif url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        with host_lock(Path(f"{Path(url.database).expanduser()}.lock")):
            yield
    else:
        yield
