"""Talking to a real `dagster dev` from tests: a free port, GraphQL, waiting for the location."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request

LOCATION = "mlplatform"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
