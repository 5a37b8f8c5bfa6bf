"""Did the platform put `production` where it points? MLflow's UI can move an alias around the gate.

Every promotion and rollback the platform makes is recorded on the version it moved the alias to
(promoted_at / promotion_run_id, rolled_back_at / rollback_run_id). The latest recorded move names
the version production should point at; any other version means someone moved the alias outside
the platform (MLflow's "Promote model" button, its alias editor, or the API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from mlplatform import config
from mlplatform.registry.store import (
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_RUN_ID,
    TAG_ROLLBACK_RUN_ID,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    all_versions,
    client_for,
    get_alias_version,
)


@dataclass(frozen=True)
class AliasMove:
    """One move of the production alias that the platform recorded."""

    version: str
    kind: str  # "promotion" | "rollback"
    at: datetime
    by: str
    run_id: str

    def describe(self) -> str:
        return (
            f"{self.kind} of v{self.version} by {self.by or 'unknown'} at "
            f"{self.at:%Y-%m-%d %H:%M} UTC (run {self.run_id[:8] or 'unknown'})"
        )


def recorded_moves(version_tags: Mapping[str, Mapping[str, str]]) -> list[AliasMove]:
    """Every promotion and rollback recorded in the tags of each version, oldest first."""
    moves = []
    for version, tags in version_tags.items():
        for kind, at, by, run in (
            ("promotion", TAG_PROMOTED_AT, TAG_PROMOTED_BY, TAG_PROMOTION_RUN_ID),
            ("rollback", TAG_ROLLED_BACK_AT, TAG_ROLLED_BACK_BY, TAG_ROLLBACK_RUN_ID),
        ):
            if tags.get(at):
                moves.append(
                    AliasMove(
                        version=str(version),
                        kind=kind,
                        at=datetime.fromisoformat(tags[at]),
                        by=tags.get(by, ""),
                        run_id=tags.get(run, ""),
                    )
                )
    return sorted(moves, key=lambda move: move.at)


def unrecorded_alias_move(
    alias_version: str | None, version_tags: Mapping[str, Mapping[str, str]]
) -> str | None:
    """A loud message when the production alias is not where the platform's last move put it,
    naming both versions; None when it is (or when nothing was ever promoted)."""
    moves = recorded_moves(version_tags)
    last = moves[-1] if moves else None
    advice = (
        "Promote and roll back only through the platform (Dagster UI: materialize "
        "production_model or launch rollback_job; or make promote / make rollback), so the "
        "promotion checks apply and every move is recorded."
    )
    if alias_version is None:
        if last is None:
            return None
        return (
            f"the production alias was REMOVED outside the platform: its last recorded move was "
            f"the {last.describe()}. {advice}"
        )
    if last is None:
        return (
            f"production points at v{alias_version}, which the platform never promoted: the "
            f"alias was set outside the platform (MLflow UI or API). {advice}"
        )
    if last.version != str(alias_version):
        return (
            f"production points at v{alias_version}, but the platform's last recorded move was "
            f"the {last.describe()}: the alias was MOVED OUTSIDE THE PLATFORM (MLflow UI or "
            f"API) to v{alias_version}. {advice}"
        )
    return None


def audit_production_alias(tracking_uri: str, name: str) -> tuple[str | None, str | None]:
    """(the version production points at, the message of unrecorded_alias_move or None)."""
    current = get_alias_version(tracking_uri, name, config.PRODUCTION_ALIAS)
    versions = all_versions(client_for(tracking_uri), name)
    alias_version = None if current is None else str(current.version)
    tags = {str(mv.version): dict(mv.tags) for mv in versions}
    return alias_version, unrecorded_alias_move(alias_version, tags)
