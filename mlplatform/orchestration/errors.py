"""Which failures Dagster's RetryPolicy may retry: transient store errors only, never bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import mlflow
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


FAILED_STEP_TAG = "mlplatform.failed_step."


def _mark_step(step: str, failed: bool) -> None:
    """Record on the Dagster run's MLflow run whether this step failed; see mlflow_tracking."""
    run = mlflow.active_run()
    if run is None:
        return
    key = FAILED_STEP_TAG + step
    if failed:
        mlflow.set_tag(key, "true")  # mlflow_tracking's teardown ends the run FAILED
    elif key in mlflow.get_run(run.info.run_id).data.tags:
        mlflow.MlflowClient().delete_tag(run.info.run_id, key)


@contextmanager
def step_guard(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Fail fast on deterministic errors (RetryPolicy then retries only transient store blips)
    and leave the MLflow run FAILED when the step fails, FINISHED once a retry succeeds."""
    step = context.op_execution_context.op.name
    try:
        yield
    except dg.Failure:
        _mark_step(step, failed=True)
        raise
    except Exception as exc:
        _mark_step(step, failed=True)
        if is_transient(exc):
            raise
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
    _mark_step(step, failed=False)
