"""Which runs are still alive: closes Dagster and MLflow runs whose process died.

The daemon's run monitoring (enabled in the dagster.yaml the CLI writes) fails runs whose run
worker died. Runs the CLI executes in process have no run worker to watch, so each carries its
pid and host as tags; a STARTED run whose process is gone on this host is reported failed here.
An MLflow run is over when its Dagster run is finished (close the dead Dagster runs first), or,
when this instance does not know its Dagster run, when its own process is gone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg
from mlflow.entities import Run

from mlplatform.registry import Convergence, end_orphaned_runs, process_alive, process_gone
from mlplatform.registry import converge as converge_registry

if TYPE_CHECKING:  # resources imports this module
    from mlplatform.orchestration.resources import PlatformStores

PID_TAG = "mlplatform/pid"
HOST_TAG = "mlplatform/host"
MLFLOW_DAGSTER_RUN_TAG = "dagster_run_id"  # set by dagster-mlflow on the runs it starts


def process_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def close_dead_dagster_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report FAILURE for in-process runs still STARTED/STARTING whose process is gone."""
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    closed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses)):
        if process_gone(run.tags.get(HOST_TAG), run.tags.get(PID_TAG)):
            instance.report_run_failed(run, message="its process died (found by mlplatform)")
            closed.append(run.run_id)
    return closed


def mlflow_run_alive(instance: dg.DagsterInstance | None) -> Callable[[Run], bool]:
    def alive(run: Run) -> bool:
        dagster_run_id = run.data.tags.get(MLFLOW_DAGSTER_RUN_TAG)
        if instance is not None and dagster_run_id:
            dagster_run = instance.get_run_by_id(dagster_run_id)
            if dagster_run is not None:  # Dagster knows: its run status decides
                return not dagster_run.is_finished
        return process_alive(run)  # a run of another instance, or none: its own process

    return alive


def close_dead_runs(instance: dg.DagsterInstance | None, tracking_uri: str) -> dict[str, list]:
    """Both kinds, Dagster first (a closed Dagster run makes its MLflow run dead too)."""
    dagster_runs = close_dead_dagster_runs(instance) if instance is not None else []
    return {
        "dagster_runs_failed": dagster_runs,
        "mlflow_runs_killed": end_orphaned_runs(tracking_uri, mlflow_run_alive(instance)),
    }


def converge(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, stores: PlatformStores
) -> Convergence:
    """Before a registry command: fail the Dagster runs of dead processes, finish or undo what
    they left in the registry, end their MLflow runs, re-project models/; say so in one line."""
    dead = close_dead_dagster_runs(context.instance)
    convergence = converge_registry(
        stores.registry(),
        run_alive=mlflow_run_alive(context.instance),
    )
    line = convergence.line()
    if dead:
        line += f"; {len(dead)} Dagster run(s) of dead processes marked failed"
    context.log.info(f"registry: {line}")
    return convergence
