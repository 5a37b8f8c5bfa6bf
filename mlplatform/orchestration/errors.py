"""Which failures Dagster's RetryPolicy may retry: transient store errors only, never bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import OperationalError

_TRANSIENT_WORDS = ("locked", "unavailable", "timed out", "timeout", "connection", "temporar")

# Retries with exponential backoff for the assets that talk to the MLflow and Optuna stores.
STORE_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | OperationalError):
        return True
    if isinstance(exc, MlflowException):
        return any(word in str(exc).lower() for word in _TRANSIENT_WORDS)
    return False


@contextmanager
def fail_fast_unless_transient() -> Iterator[None]:
    """Turn a deterministic error into a non-retryable Failure so RetryPolicy retries only blips."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
