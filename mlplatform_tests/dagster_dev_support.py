"""Talking to a real `dagster dev` from tests: start and stop it, GraphQL, waiting for the
location."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from mlplatform import config

LOCATION = "mlplatform"
DEV_LOG = "dagster-dev.log"  # in the DAGSTER_HOME folder: what `dagster dev` printed


def dev_log(dagster_home: Path) -> Path:
    return dagster_home / DEV_LOG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dagster_dev(dagster_home: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """`dagster dev` on a free port (the process and the port) until the block ends; then its
    process group, which the run workers it launched share, ends too. What it prints goes to
    dev_log(dagster_home)."""
    create_stores(dagster_home)
    port = free_port()
    with dev_log(dagster_home).open("ab") as log:
        process = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1"),
                *("-p", str(port), "-w", str(config.PROJECT_ROOT / "workspace.yaml")),
            ],
            cwd=config.PROJECT_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, port
    finally:
        os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def create_stores(dagster_home: Path) -> None:
    """Create the instance's SQLite stores before `dagster dev` starts: its webserver, daemon and
    code server, and a test filling the home meanwhile, would otherwise create a fresh store
    together and can stamp its schema twice ("alembic_version has more than one head"); the
    webserver then never serves."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)
        instance.fetch_materializations(dg.AssetKey("raw_prices"), limit=1)
        instance.all_instigator_state()


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def wait_for_location(
    port: int, process: subprocess.Popen, deadline: float, log: Path | None = None
) -> None:
    """Until the webserver serves the code location loaded, the process dies, or the deadline
    (the error then says what the webserver last answered, and ends with `log`'s last lines)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    query += "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    last: object = "no answer"
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}{_tail(log)}")
        try:
            entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
        except OSError as exc:
            last = exc
        else:
            last = entries
            if any(
                e["name"] == LOCATION
                and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
                for e in entries
            ):
                return
        time.sleep(1)
    raise TimeoutError(
        f"dagster dev did not load the code location in time; last answer: {last}{_tail(log)}"
    )


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)
