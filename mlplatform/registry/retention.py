"""Which registered versions a prune may remove, and why each other one stays: pure, no store.

A weekly retrain registers a version (with its MLflow runs, Optuna study and reports) every
week, so the home folder grows without end unless old versions go. The policy keeps the last
`keep_last` registrations and every version younger than `keep_days` days; whatever the policy
says, the versions the platform depends on are never removed (production, the previous
production that a rollback returns to, staging, a version with an archive in the export, and
any version an unfinished registry operation names). prune.py reads these facts from the
registry and carries the plan out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

MAX_KEEP_LAST = 100_000
MAX_KEEP_DAYS = 36_500  # a hundred years: anything larger is a typo


class Protection(StrEnum):
    """Why a version stays."""

    PRODUCTION = "production"
    PREVIOUS_PRODUCTION = "previous production (the rollback target)"
    STAGING = "staging"
    ARCHIVED = "archived in the export"
    INTENT = "named by an unfinished registry operation"
    LAST_N = "among the last registrations the policy keeps"
    YOUNG = "younger than the policy's age limit"


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep the last `keep_last` registrations and every version younger than `keep_days` days.

    Set by the deployment (MLPLATFORM_RETENTION_KEEP_LAST / _KEEP_DAYS), never by a run's config:
    what may be deleted is not a per-run choice."""

    keep_last: int
    keep_days: int

    def __post_init__(self) -> None:
        for name, limit in (("keep_last", MAX_KEEP_LAST), ("keep_days", MAX_KEEP_DAYS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"retention policy {name}={value!r}: not a whole number")
            if not 0 <= value <= limit:
                raise ValueError(f"retention policy {name}={value}: must be 0 to {limit:,}")

    @classmethod
    def from_settings(
        cls, keep_last: str, keep_days: str, *, sources: tuple[str, str]
    ) -> RetentionPolicy:
        """The policy from two settings as text (environment variables), each error naming its
        `sources` entry."""
        values = []
        for text, source in zip((keep_last, keep_days), sources, strict=True):
            try:
                values.append(int(text.strip()))
            except ValueError:
                raise ValueError(f"{source}={text!r}: not a whole number") from None
        try:
            return cls(*values)
        except ValueError as exc:
            raise ValueError(f"{sources[0]}/{sources[1]}: {exc}") from None

    def describe(self) -> str:
        return f"keep the last {self.keep_last} versions and any younger than {self.keep_days} days"


@dataclass(frozen=True)
class Registered:
    """One registered version: its number and when it was registered (timezone-aware)."""

    version: str
    created_at: datetime


@dataclass(frozen=True)
class PrunePlan:
    """The versions to remove (oldest first) and, for each kept one, every reason it stays."""

    remove: tuple[str, ...]
    kept: dict[str, tuple[Protection, ...]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per version, for a person deciding whether to let it run."""
        out = [f"remove v{v}" for v in self.remove]
        out += [
            f"keep v{v}: " + ", ".join(reason.value for reason in reasons)
            for v, reasons in sorted(self.kept.items(), key=lambda item: int(item[0]))
        ]
        return out


def plan_prune(
    policy: RetentionPolicy,
    registered: Sequence[Registered],
    roles: Mapping[str, Collection[Protection]],
    now: datetime,
) -> PrunePlan:
    """What `policy` removes from `registered` at `now`; `roles` are the registry's own reasons
    to keep a version (production, previous production, staging, archived, intent), which no
    policy overrides."""
    if now.tzinfo is None:
        raise ValueError("plan_prune needs a timezone-aware `now`")
    newest = sorted(registered, key=lambda r: int(r.version), reverse=True)
    last = {r.version for r in newest[: policy.keep_last]}
    cutoff = now - timedelta(days=policy.keep_days)
    remove: list[str] = []
    kept: dict[str, tuple[Protection, ...]] = {}
    for item in reversed(newest):
        reasons = [r for r in Protection if r in set(roles.get(item.version, ()))]
        if item.version in last:
            reasons.append(Protection.LAST_N)
        if item.created_at > cutoff:
            reasons.append(Protection.YOUNG)
        if reasons:
            kept[item.version] = tuple(reasons)
        else:
            remove.append(item.version)
    return PrunePlan(tuple(remove), kept)
