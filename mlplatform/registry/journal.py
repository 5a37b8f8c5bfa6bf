"""The intent record: what a registry operation is about to do, written before it does it.

register, promote and rollback each write one record after validating their inputs and before
touching an alias or a tag, and delete it once the registry and every export agree again; prune
writes one naming everything it removes before it removes anything. It is
a tag of the registered model, so every host sharing the registry sees it, and the registry lock
guarantees at most one. A record found later means its process died (or could not undo its own
failure): the next registry command, or `repair`, finishes or undoes it (recovery.py).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlplatform.registry.errors import RegistryError
from mlplatform.registry.store import is_not_found, now_utc

INTENT_TAG = "mlplatform.intent"


@dataclass
class Intent:
    """One unfinished operation: `op` is register, promote, rollback or prune; `data` its own
    facts."""

    op: str
    name: str
    data: dict[str, Any]
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: str = field(default_factory=lambda: now_utc().isoformat())
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    def describe(self) -> str:
        if self.op == "register":
            what = f"registration of {self.data.get('semver')}"
        elif self.op == "prune":
            what = "prune of " + ", ".join(f"v{v}" for v in self.data.get("versions", []))
        else:
            what = f"{self.op} v{self.data.get('from_version')} -> v{self.data.get('to_version')}"
        return f"{what} (started {self.started_at} by pid {self.pid} on {self.host})"


def write_intent(client: MlflowClient, intent: Intent) -> None:
    """Record (or update) the intent on the registered model: one tag write, atomic."""
    client.set_registered_model_tag(intent.name, INTENT_TAG, json.dumps(asdict(intent)))


def read_intent(client: MlflowClient, name: str) -> Intent | None:
    """The recorded intent, None when there is none; an unreadable record (a hand edit) is a
    RegistryError that names it."""
    try:
        raw = client.get_registered_model(name).tags.get(INTENT_TAG)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    if raw is None:
        return None
    try:
        return Intent(**json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise RegistryError(
            f"registered model {name!r}: unreadable {INTENT_TAG} tag ({exc})"
        ) from exc


def clear_intent(client: MlflowClient, name: str) -> None:
    try:
        client.delete_registered_model_tag(name, INTENT_TAG)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
