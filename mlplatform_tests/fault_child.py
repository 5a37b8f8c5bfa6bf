"""Run one registry operation (register, promote, rollback, prune), or one platform command
("cli": its arguments), with a fault armed at one step; used as a subprocess by the fault tests
(`python -m mlplatform_tests.fault_child '<json spec>'`).

A spec names the step as an attribute ("MlflowClient.create_model_version", "os.rename",
"mlplatform.registry.aliases.clear_intent"), `when` (before/after the real call), which
matching call (`nth`; `match` = regex on the first argument's basename, for os.rename) and the
`action`: kill (SIGKILL this process), raise (an MlflowException, as a lost response
would) or enospc.
"""

from __future__ import annotations

import errno
import functools
import importlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def resolve(target: str) -> tuple[Any, str]:
    owner, attr = target.rsplit(".", 1)
    if owner == "MlflowClient":
        return MlflowClient, attr
    return importlib.import_module(owner), attr


def faulty(original: Callable, spec: dict[str, Any]) -> Callable:
    calls = {"n": 0}
    pattern = spec.get("match")

    def fire() -> None:
        action = spec["action"]
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise MlflowException(f"injected fault at {spec['target']}")

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hit = False
        if pattern is None or re.fullmatch(pattern, Path(str(args[0])).name):
            calls["n"] += 1
            hit = calls["n"] == spec.get("nth", 1)
        if hit and spec["when"] == "before":
            fire()
        result = original(*args, **kwargs)
        if hit and spec["when"] == "after":
            fire()
        return result

    return wrapper


def arm(spec: dict[str, Any], setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    owner, attr = resolve(spec["target"])
    setattr_(owner, attr, faulty(getattr(owner, attr), spec))


def run_operation(op: str, uri: str, export_root: Path, experiment_id: str) -> str:
    """Do `op` as the platform does it, inside an MLflow run tagged with this process."""
    from mlplatform.registry import Registry, RetentionPolicy, owner_tags, promote, prune, rollback
    from mlplatform_tests.registry_support import Store, prune_registry

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.create_run(experiment_id, tags=owner_tags()).info.run_id
    if op == "register":
        store = Store(Path(uri.removeprefix("sqlite:///")).parent, uri, experiment_id)
        result = store.register("1.3.0", seed=5, export_root=export_root, run_id=run_id).version
    elif op.startswith("promote"):
        version = op.partition(":")[2] or "4"
        common = {"actor": "tester", "reason": "fault suite", "run_id": run_id}
        result = promote(Registry(uri, export_root), version, **common).version
    elif op == "rollback":
        result = rollback(
            Registry(uri, export_root), actor="tester", reason="fault suite", run_id=run_id
        ).to_version
    elif op == "prune":  # keep the newest registration; everything unprotected goes
        registry = prune_registry(uri, export_root)
        result = ",".join(prune(registry, RetentionPolicy(1, 0)).removal.versions)
    else:
        raise ValueError(f"unknown operation {op!r}")
    client.set_terminated(run_id, status="FINISHED")
    return str(result)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("target"):
        arm(spec)
    if "cli" in spec:  # a platform command, as `make` runs it, with the fault armed
        from mlplatform.cli import main as cli_main

        sys.exit(cli_main(spec["cli"]))
    print(run_operation(spec["op"], spec["uri"], Path(spec["export_root"]), spec["experiment_id"]))


if __name__ == "__main__":
    main()
