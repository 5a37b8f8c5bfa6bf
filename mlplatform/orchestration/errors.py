"""Which failures Dagster's RetryPolicy may retry: transient store errors only, never bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from mlflow.exceptions import MlflowException
from pydantic import ValidationError, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler
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


class CheckedConfig(dg.Config):
    """Run config whose out-of-range values fail the step at once, naming each field.

    Dagster builds the Config inside the step, after launch: a plain pydantic error there would
    be retried by STORE_RETRY_POLICY and surface only as "Exceeded max_retries of 3".
    """

    @model_validator(mode="wrap")
    @classmethod
    def _fail_without_retry(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in e['loc']) or cls.__name__}"
                f"={e.get('input')!r}: {e['msg']}"
                for e in err.errors()
            )
            raise dg.Failure(
                description=f"invalid run config ({cls.__name__}): {problems}",
                allow_retries=False,
            ) from None


@contextmanager
def step_guard(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Fail fast on deterministic errors, so the RetryPolicy retries only transient store
    blips (a locked database, a dropped connection), never bad input."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
