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

from mlplatform import config

LOCATION = "mlplatform"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dagster_dev(dagster_home: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """`dagster dev` on a free port (the process and the port) until the block ends; then its
    process group, which the run workers it launched share, ends too."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1"),
            *("-p", str(port), "-w", str(config.PROJECT_ROOT / "workspace.yaml")),
        ],
        cwd=config.PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def wait_for_location(port: int, process: subprocess.Popen, deadline: float) -> None:
    """Until the webserver serves the code location loaded, the process dies, or the deadline."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name "
    query += "locationOrLoadError { __typename } } } } }"
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}")
        with contextlib.suppress(OSError):
            entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
            if any(
                e["name"] == LOCATION
                and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
                for e in entries
            ):
                return
        time.sleep(1)
    raise TimeoutError("dagster dev did not load the code location in time")
