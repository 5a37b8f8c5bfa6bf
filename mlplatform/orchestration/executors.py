"""Where steps run: in this process, in one process per step, or on Celery workers of any host.

Dagster's public API fixes one executor per job, so the choice is per code location, not per run:
Dagster's multi_or_in_process_executor (the Launchpad picks `in_process` or `multiprocess`,
default multiprocess) unless MLPLATFORM_EXECUTOR=celery selects dagster-celery's. The CLI's
`--executor` builds the job with the executor it names, and each step process (a Celery worker's
too) rebuilds that job from the same pointer. Multiprocess and Celery need a persistent instance
and asset values in storage each step reaches: the IO manager's base_dir (MLPLATFORM_IO_DIR) on a
shared path when the workers are on other hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_celery import celery_executor

from mlplatform import config

EXECUTORS = ("in_process", "multiprocess", "celery")
# Dagster's all-assets job has a reserved name that a job pointer cannot rebuild: CLI runs of
# assets on another executor use this stand-in (definitions.job_for), which the UI never lists.
CLI_ASSETS_JOB = "cli_assets_job"


CELERY_YAML = Path(__file__).parents[1] / "celery.yaml"  # the workers read the same file


def celery_settings() -> dict[str, Any]:
    """The executor's config as the workers get it: broker and backend from the environment,
    tasks acknowledged late so a killed worker's step goes to the next worker."""
    return yaml.safe_load(CELERY_YAML.read_text())["execution"]["config"]


def _known(executor: str) -> str:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    return executor


def executor_definition(executor: str) -> dg.ExecutorDefinition:
    """dagster-celery's executor (broker from the environment, never a URL in run config) for
    `celery`; else Dagster's default, which run config switches between in process and
    multiprocess."""
    if _known(executor) == "celery":
        return celery_executor.configured(celery_settings())
    return dg.multi_or_in_process_executor


def execution_config(executor: str) -> dict[str, Any]:
    """The run config block a job built with `executor_definition(executor)` runs with; refuses a
    distributed run whose asset values would land in this host's home folder, which the other
    hosts cannot read."""
    if _known(executor) == "celery":
        if not os.environ.get(config.IO_DIR_ENV):
            raise ValueError(
                f"--executor celery runs steps on other hosts: set {config.IO_DIR_ENV} to a "
                f"folder (or mounted bucket) every worker reaches; {config.io_dir()} is this host's"
            )
        unset = [
            n
            for n in (config.CELERY_BROKER_ENV, config.CELERY_BACKEND_ENV)
            if not os.environ.get(n)
        ]
        if unset:
            raise ValueError(
                f"--executor celery needs {' and '.join(unset)}, the same as on every worker "
                f"(see {CELERY_YAML.name}): e.g. {config.CELERY_BROKER_ENV}=amqp://guest@rabbitmq"
                f":5672// {config.CELERY_BACKEND_ENV}=rpc://"
            )
    if executor == "celery":
        return {}  # configured from the environment
    return {"execution": {"config": {executor: {}}}}
