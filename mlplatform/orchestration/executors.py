"""Where steps run: in this process, in one process per step, or on Celery workers of any host.

One executor for every job, configured per run (`execution: config: {in_process|multiprocess|
celery: ...}`), so the UI, the CLI (`--executor`) and schedules choose without another job
definition. Multiprocess and Celery reconstruct the code location in each step's process, so they
need a persistent instance and asset values in storage each step reaches: the IO manager's base_dir
(MLPLATFORM_IO_DIR) on a shared path when the workers are on other hosts.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster._core.definitions.executor_definition import (  # the pieces of Dagster's default
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.retries import RetryMode
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor

from mlplatform import config

EXECUTORS = ("in_process", "multiprocess", "celery")
DEFINITIONS = ("mlplatform.definitions", "defs")  # what a step process reconstructs


def _requirements(executor_config: dict[str, Any]) -> list[dg.ExecutorRequirement]:
    return [] if "in_process" in executor_config else multiple_process_executor_requirements()


@dg.executor(
    name="mlplatform_executor",
    config_schema=dg.Field(
        dg.Selector(
            {
                "in_process": IN_PROC_CONFIG,
                "multiprocess": MULTI_PROC_CONFIG,
                "celery": dg.Field(CELERY_CONFIG, is_required=False),
            }
        ),
        default_value={"multiprocess": {}},  # what the UI launched before: Dagster's default
    ),
    requirements=_requirements,
)
def platform_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's multi_or_in_process_executor plus dagster-celery's, chosen by run config."""
    (kind, settings), *_ = init_context.executor_config.items()
    if kind == "celery":
        return CeleryExecutor(
            broker=settings.get("broker"),
            backend=settings.get("backend"),
            config_source=settings.get("config_source"),
            include=settings.get("include"),
            retries=RetryMode.from_config(settings["retries"]),
        )
    if kind == "multiprocess":
        return _core_multiprocess_executor_creation(settings)
    return _core_in_process_executor_creation(settings)


def celery_settings() -> dict[str, Any]:
    """Broker and result backend from the environment (default: the local RabbitMQ, rpc://)."""
    broker = os.environ.get(config.CELERY_BROKER_ENV)
    if not broker:
        return {}
    backend = os.environ.get(config.CELERY_BACKEND_ENV) or (
        broker if broker.startswith(("redis://", "rediss://")) else "rpc://"
    )
    return {"broker": {"env": config.CELERY_BROKER_ENV}, "backend": backend}


def execution_config(executor: str) -> dict[str, Any]:
    """The run config block that selects `executor`; refuses a distributed run whose asset
    values would land in this host's home folder, which the other hosts cannot read."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if executor == "celery" and not os.environ.get(config.IO_DIR_ENV):
        raise ValueError(
            f"--executor celery runs steps on other hosts: set {config.IO_DIR_ENV} to a folder "
            f"(or mounted bucket) every worker reaches; {config.io_dir()} is this host's"
        )
    settings = celery_settings() if executor == "celery" else {}
    return {"execution": {"config": {executor: settings}}}


def reconstructable_job(job_name: str) -> ReconstructableJob:
    """The job as a pointer into the code location, so another process can rebuild it."""
    module, attribute = DEFINITIONS
    repository = ReconstructableRepository.for_module(
        module, attribute, working_directory=str(config.PROJECT_ROOT)
    )
    return repository.get_reconstructable_job(job_name)
