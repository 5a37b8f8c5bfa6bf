"""Which version served, and which waited for review, at any moment: what a prediction for a
past date may use (a backfill never borrows a version from after that date's close).

Version tags keep only each version's latest promotion and rollback, so every move of the
production alias is also appended to one registered-model tag, written and withdrawn by the
same intent as the move itself (recovery.move_forward / move_back).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlplatform.registry.store import TAG_PENDING, all_versions, registry_tag

HISTORY_TAG = "mlplatform.production_history"
KEPT_MOVES = 500  # about ten years of weekly moves; the tag stays far below MLflow's limit


@dataclass(frozen=True)
class Move:
    """The production alias moved to `version` at `at` (ISO time, UTC)."""

    version: str
    at: str
    kind: str  # "promotion" | "rollback"
    token: str  # the intent that made it


def production_history(client: MlflowClient, name: str) -> list[Move]:
    raw = registry_tag(client, name, HISTORY_TAG)
    return [Move(**move) for move in json.loads(raw)] if raw else []


def _write(client: MlflowClient, name: str, moves: Sequence[Move]) -> None:
    kept = [asdict(move) for move in moves][-KEPT_MOVES:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(kept))


def record_move(client: MlflowClient, name: str, move: Move) -> None:
    """Append the move, once (a finished intent may be applied again)."""
    moves = production_history(client, name)
    if all(m.token != move.token for m in moves):
        _write(client, name, [*moves, move])


def withdraw_move(client: MlflowClient, name: str, token: str) -> None:
    moves = production_history(client, name)
    if any(m.token == token for m in moves):
        _write(client, name, [m for m in moves if m.token != token])


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def production_at(moves: Sequence[Move], moment: datetime) -> str | None:
    """The version in production at `moment`, by the recorded moves (None before the first)."""
    at = _utc(moment)
    before = [m for m in moves if datetime.fromisoformat(m.at) <= at]
    return max(before, key=lambda m: m.at).version if before else None


def staging_at(versions: Sequence[ModelVersion], moment: datetime) -> ModelVersion | None:
    """The version staging pointed at, at `moment`: the newest complete registration then."""
    cutoff = _utc(moment).timestamp() * 1000
    registered = [
        mv for mv in versions if TAG_PENDING not in mv.tags and mv.creation_timestamp <= cutoff
    ]
    return max(registered, key=lambda mv: int(mv.version), default=None)


def serving_at(
    client: MlflowClient, name: str, moment: datetime
) -> tuple[ModelVersion | None, ModelVersion | None]:
    """(champion, challenger) at `moment`: the version in production then, and the staging
    version then when it was another one waiting for review (the shadow), else None."""
    versions = {str(mv.version): mv for mv in all_versions(client, name)}
    champion_version = production_at(production_history(client, name), moment)
    champion = versions.get(champion_version) if champion_version else None
    staging = staging_at(list(versions.values()), moment)
    waiting = staging is not None and (champion is None or staging.version != champion.version)
    return champion, staging if waiting else None
