"""Finish or undo what a dead process left, then make every export agree with the registry.

Every registry operation starts with `converge_locked` under the registry lock: the recorded
intent (journal.py) is resolved (a registration whose `staging` alias moved is finished, else
undone; a promotion or rollback whose `production` alias moved is finished, else undone; a
prune is finished),
versions an unfinished registration left behind are deleted, the export is projected from the
aliases (projection.py) and MLflow runs of dead processes are ended. `repair` does the same and
also puts `archived` tags right and names every version whose registered files are lost.
Each step is idempotent, so a crash inside any of them is finished by the next command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Run

from mlplatform import config
from mlplatform.registry.errors import ArtifactLost, RegistryError
from mlplatform.registry.history import Move, record_move, withdraw_move
from mlplatform.registry.journal import Intent, clear_intent, read_intent
from mlplatform.registry.projection import Projection, archived_versions, project
from mlplatform.registry.removal import Removal, remove
from mlplatform.registry.runs import end_orphaned_runs, process_alive
from mlplatform.registry.store import (
    TAG_ARCHIVED,
    TAG_ARCHIVED_AT,
    TAG_PENDING,
    Registry,
    alias_version,
    all_versions,
    model_text,
    now_utc,
    registered_model_exists,
    version_exists,
    was_production,
)

TagChanges = dict[str, dict[str, str | None]]  # {version: {tag: value, or None to delete}}


def apply_tags(client: MlflowClient, name: str, changes: TagChanges) -> None:
    """Set (or, for None, delete) model-version tags; versions that no longer exist are skipped."""
    for version, pairs in changes.items():
        if not version_exists(client, name, version):
            continue
        current = client.get_model_version(name, version).tags
        for key, value in pairs.items():
            if value is None:
                if key in current:
                    client.delete_model_version_tag(name, version, key)
            elif current.get(key) != value:
                client.set_model_version_tag(name, version, key, value)


def tags_before(client: MlflowClient, name: str, after: TagChanges) -> TagChanges:
    """The current values of the tags `after` will change, to restore them on an undo."""
    return {
        version: {key: client.get_model_version(name, version).tags.get(key) for key in pairs}
        for version, pairs in after.items()
    }


def pending_versions(client: MlflowClient, name: str, token: str | None = None) -> list[str]:
    """Versions a registration tagged pending (of one intent, or of any when token is None)."""
    return [
        str(mv.version)
        for mv in all_versions(client, name)
        if TAG_PENDING in mv.tags and (token is None or mv.tags[TAG_PENDING] == token)
    ]


# --- the two directions of each operation ----------------------------------------------------
def undo_registration(client: MlflowClient, intent: Intent) -> None:
    """Staging back where it was, the new version(s) deleted, and the registered model too when
    this registration created it and nothing else is in it."""
    name = intent.name
    created = set(pending_versions(client, name, intent.token))
    if intent.data.get("version") and version_exists(client, name, intent.data["version"]):
        created.add(str(intent.data["version"]))
    staging = alias_version(client, name, config.STAGING_ALIAS)
    if staging is not None and str(staging.version) in created:
        previous = intent.data.get("previous_staging")
        if previous and version_exists(client, name, previous):
            client.set_registered_model_alias(name, config.STAGING_ALIAS, str(previous))
        else:
            client.delete_registered_model_alias(name, config.STAGING_ALIAS)
    for version in sorted(created, key=int):
        client.delete_model_version(name, version)
    if (
        not intent.data.get("model_existed")
        and registered_model_exists(client, name)
        and not all_versions(client, name)
    ):
        client.delete_registered_model(name)


def finish_registration(client: MlflowClient, intent: Intent) -> None:
    """The staging alias moved to the new version: drop its pending tag and any stray sibling."""
    name = intent.name
    staging = alias_version(client, name, config.STAGING_ALIAS)
    assert staging is not None
    if TAG_PENDING in staging.tags:
        client.delete_model_version_tag(name, str(staging.version), TAG_PENDING)
    for other in pending_versions(client, name, intent.token):
        if other != str(staging.version):
            client.delete_model_version(name, other)


def move_forward(client: MlflowClient, intent: Intent) -> None:
    """A promotion or rollback: the moved version's and the leaving version's tags, then the
    production alias (the commit point), and the move in the production history."""
    apply_tags(client, intent.name, intent.data["tags_after"])
    client.set_registered_model_alias(
        intent.name, config.PRODUCTION_ALIAS, intent.data["to_version"]
    )
    move = Move(intent.data["to_version"], intent.data["at"], intent.op, intent.token)
    record_move(client, intent.name, move)


def move_back(client: MlflowClient, intent: Intent) -> None:
    """Production back where it was and the tags as they were."""
    name, previous = intent.name, intent.data["from_version"]
    current = alias_version(client, name, config.PRODUCTION_ALIAS)
    if previous is None:
        if current is not None:
            client.delete_registered_model_alias(name, config.PRODUCTION_ALIAS)
    elif current is None or str(current.version) != previous:
        client.set_registered_model_alias(name, config.PRODUCTION_ALIAS, previous)
    apply_tags(client, name, intent.data["tags_before"])
    withdraw_move(client, name, intent.token)


def committed(client: MlflowClient, intent: Intent) -> bool:
    """Whether the operation reached its commit point (its alias points at its version)."""
    if intent.op == "register":
        staging = alias_version(client, intent.name, config.STAGING_ALIAS)
        return staging is not None and (
            staging.tags.get(TAG_PENDING) == intent.token
            or str(staging.version) == str(intent.data.get("version"))
        )
    current = alias_version(client, intent.name, config.PRODUCTION_ALIAS)
    return current is not None and str(current.version) == intent.data["to_version"]


def finish_or_undo(registry: Registry, intent: Intent) -> str:
    """Resolve one intent; "forward" or "back". A prune only goes forward (removal.py)."""
    client = registry.client
    if intent.op == "prune":
        remove(registry, Removal.of(intent.data))
        return "forward"
    if intent.op not in ("register", "promote", "rollback"):
        raise RegistryError(f"unknown operation {intent.op!r} in the intent record")
    forward = committed(client, intent)
    if intent.op == "register":
        (finish_registration if forward else undo_registration)(client, intent)
    else:
        (move_forward if forward else move_back)(client, intent)
    return "forward" if forward else "back"


# --- converging --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recovered:
    """An unfinished operation this call resolved: `direction` is "forward" or "back"."""

    intent: Intent
    direction: str

    def describe(self) -> str:
        verb = "finished" if self.direction == "forward" else "undone"
        return f"unfinished {self.intent.describe()} {verb}"


@dataclass
class Convergence:
    """What a command found left behind and put right before doing its own work."""

    recovered: list[Recovered] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # unreadable intent records
    orphans_deleted: list[str] = field(default_factory=list)
    projection: Projection = field(default_factory=Projection)
    runs_ended: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        p = self.projection
        return any(
            (self.recovered, self.dropped, self.orphans_deleted, p.changed, p.removed)
        ) or bool(self.runs_ended)

    def line(self) -> str:
        """One line for the person: what was finished, undone or rebuilt, or that all agreed."""
        parts = [r.describe() for r in self.recovered] + self.dropped
        if self.orphans_deleted:
            parts.append("orphan versions deleted: " + ", ".join(self.orphans_deleted))
        if self.projection.changed:
            parts.append("exports rebuilt: " + ", ".join(self.projection.changed))
        if self.projection.removed:
            parts.append(f"{len(self.projection.removed)} leftover export(s) removed")
        if self.runs_ended:
            parts.append(f"{len(self.runs_ended)} MLflow run(s) of dead processes ended")
        parts += self.projection.held
        if self.projection.losses:
            parts.append("LOST: " + "; ".join(self.projection.losses))
        return "; ".join(parts) if parts else "registry and models/ already agreed"


def converge_locked(
    registry: Registry, run_alive: Callable[[Run], bool] = process_alive
) -> Convergence:
    """Resolve what a dead process left and re-project models/ (the caller holds the lock)."""
    client, name = registry.client, registry.name
    out = Convergence()
    try:
        intent = read_intent(client, name)
    except RegistryError as exc:  # a hand-edited record: the aliases are the truth
        clear_intent(client, name)
        out.dropped.append(f"{exc}: dropped, the aliases decide")
        intent = None
    if intent is not None:
        out.recovered.append(Recovered(intent, finish_or_undo(registry, intent)))
        clear_intent(client, name)
    for version in pending_versions(client, name):
        client.delete_model_version(name, version)
        out.orphans_deleted.append(f"v{version}")
    out.projection = project(
        client, registry.tracking_uri, name, registry.export_root, registry.retention
    )
    out.runs_ended = end_orphaned_runs(registry.tracking_uri, run_alive)
    return out


def converge(registry: Registry, run_alive: Callable[[Run], bool] = process_alive) -> Convergence:
    with registry.lock():
        return converge_locked(registry, run_alive)


# --- repair ------------------------------------------------------------------------------------
@dataclass
class RepairReport:
    convergence: Convergence
    tags_fixed: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)  # registered files gone or altered
    production_version: str | None = None

    @property
    def changed(self) -> bool:
        return self.convergence.changed or bool(self.tags_fixed)

    def lines(self) -> list[str]:
        out = [f"production: {self.production_version or 'none'}", self.convergence.line()]
        if self.tags_fixed:
            out.append("tags fixed: " + ", ".join(self.tags_fixed))
        out += [f"LOST: {loss}" for loss in self.losses]
        return out


def dependent_versions(client: MlflowClient, registry: Registry) -> dict[str, str]:
    """{version: role} for every version the platform depends on: production, staging and each
    one models/archive keeps."""
    roles: dict[str, str] = {}
    for mv in archived_versions(client, registry.name, registry.retention):
        roles[str(mv.version)] = "archived"
    for alias in (config.STAGING_ALIAS, config.PRODUCTION_ALIAS):
        holder = alias_version(client, registry.name, alias)
        if holder is not None:
            roles[str(holder.version)] = alias
    return roles


def registry_losses(client: MlflowClient, registry: Registry) -> list[str]:
    """Each depended-on version whose registered model files are gone or no longer match the
    checksum recorded at registration, with the next step."""
    losses = []
    for version, role in sorted(
        dependent_versions(client, registry).items(), key=lambda i: int(i[0])
    ):
        mv = client.get_model_version(registry.name, version)
        try:
            model_text(client, registry.tracking_uri, mv)
        except ArtifactLost as exc:
            step = (
                "roll back to a healthy version (make rollback VERSION=...)"
                if role == config.PRODUCTION_ALIAS
                else "retrain (staging) or let retention drop it (archived)"
            )
            losses.append(f"v{version} ({role}): {exc}; {step}")
    return losses


def fix_archived_tags(client: MlflowClient, name: str) -> list[str]:
    """`archived` on exactly the versions that were production and are not now."""
    production = alias_version(client, name, config.PRODUCTION_ALIAS)
    fixed = []
    for mv in all_versions(client, name):
        is_production = production is not None and str(mv.version) == str(production.version)
        archived = mv.tags.get(TAG_ARCHIVED)
        if is_production and archived is not None:
            client.delete_model_version_tag(name, str(mv.version), TAG_ARCHIVED)
            fixed.append(f"v{mv.version}: archived removed (it is production)")
        elif not is_production and was_production(mv) and archived != "true":
            client.set_model_version_tag(name, str(mv.version), TAG_ARCHIVED, "true")
            client.set_model_version_tag(
                name, str(mv.version), TAG_ARCHIVED_AT, now_utc().isoformat()
            )
            fixed.append(f"v{mv.version}: archived=true")
    return fixed


def repair(registry: Registry, run_alive: Callable[[Run], bool] = process_alive) -> RepairReport:
    """Bring registry, aliases, tags and every export into agreement; name every loss."""
    client = registry.client
    with registry.lock():
        convergence = converge_locked(registry, run_alive)
        report = RepairReport(convergence, tags_fixed=fix_archived_tags(client, registry.name))
        report.losses = registry_losses(client, registry)
        production = alias_version(client, registry.name, config.PRODUCTION_ALIAS)
        report.production_version = None if production is None else str(production.version)
    return report
