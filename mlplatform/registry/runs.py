"""MLflow runs a dead process left RUNNING: each run the platform starts is tagged with its
process (owner_tags); a RUNNING run whose process is provably gone is over."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from mlflow.entities import Run, RunStatus

from mlplatform.registry.store import client_for

OWNER_PID_TAG = "mlplatform.pid"
OWNER_HOST_TAG = "mlplatform.host"


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs an MLflow run, so a later process can tell it died."""
    return {OWNER_PID_TAG: str(os.getpid()), OWNER_HOST_TAG: socket.gethostname()}


def process_gone(host: str | None, pid: str | None) -> bool:
    """True only when the process is provably gone: this host, and no process with that pid.
    Another host, or no pid recorded: cannot tell, so not gone."""
    if host != socket.gethostname() or not (pid or "").isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # type: ignore[arg-type]
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def process_alive(run: Run) -> bool:
    """False only when the run's owner process is provably gone (same host, no such pid)."""
    tags = run.data.tags
    return not process_gone(tags.get(OWNER_HOST_TAG), tags.get(OWNER_PID_TAG))


def running_runs(tracking_uri: str) -> list[Run]:
    client = client_for(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    return list(client.search_runs(ids, filter_string="attributes.status = 'RUNNING'"))


def dead_runs(tracking_uri: str, run_alive: Callable[[Run], bool] = process_alive) -> list[Run]:
    return [run for run in running_runs(tracking_uri) if not run_alive(run)]


def end_orphaned_runs(
    tracking_uri: str, run_alive: Callable[[Run], bool] = process_alive
) -> list[str]:
    """End as KILLED every RUNNING MLflow run whose owner is gone; returns their ids."""
    client = client_for(tracking_uri)
    ended = []
    for run in dead_runs(tracking_uri, run_alive):
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
        ended.append(run.info.run_id)
    return ended
