"""May the current staging version go to production? Decided here, and only here.

The Dagster layer gathers the facts (which versions the aliases point at, the latest evaluation
of every promotion check and the backtest it targeted) and applies the Decision; every rule is a
few lines below: failed or unfinished checks, stale checks (another staging or production
version since), checks spread over several backtests, a version that was rolled back out of
production, and the override with its written reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mlplatform.promotion.policy import PromotionPolicy
from mlplatform.training import Recipe

NO_PRODUCTION = "none"


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_EVALUATED = "never evaluated"
    UNFINISHED = "did not finish"  # planned, in progress, skipped or crashed


@dataclass(frozen=True)
class CheckEvidence:
    """The latest evaluation of one promotion check, as the instance recorded it."""

    name: str
    status: CheckStatus
    description: str = ""
    run_id: str = ""
    backtest_id: int | None = None  # the backtest_report materialization it evaluated
    staging_version: str | None = None  # the staging version that backtest scored
    production_version: str | None = None  # the production it compared against, or "none"
    policy: dict[str, float] | None = None  # the promotion policy it applied, as recorded


@dataclass(frozen=True)
class PromotionFacts:
    staging_version: str | None
    production_version: str | None
    rolled_back_version: str | None  # the version the last rollback took out of production
    checks: tuple[CheckEvidence, ...]
    policy: PromotionPolicy  # the deployed policy: a check run under another vouches for nothing


@dataclass(frozen=True)
class Decision:
    staging_version: str | None
    problems: tuple[str, ...]  # each failing or stale check once, then version-level problems
    refusals: tuple[str, ...]  # what no override can get past
    override: bool
    reason: str
    checks_total: int

    @property
    def allowed(self) -> bool:
        return not self.refusals and (not self.problems or self.override)

    @property
    def overridden(self) -> bool:
        return self.allowed and bool(self.problems)

    def message(self) -> str:
        """Why promotion is refused, and the next step in the UI and on the command line."""
        if self.refusals:
            return "refusing to promote: " + "; ".join(self.refusals)
        lines = [
            f"refusing to promote staging v{self.staging_version}: "
            f"{len(self.problems)} problem(s) with {self.checks_total} promotion checks"
        ]
        lines += [f"- {problem}" for problem in self.problems]
        lines += [
            "Next step: re-run retrain_job (or materialize backtest_report) for a fresh "
            "verdict, or promote anyway with a written reason:",
            "  UI: Materialize production_model with Launchpad config "
            "{override: true, reason: '...'}",
            '  CLI: make promote OVERRIDE=1 REASON="..."',
        ]
        return "\n".join(lines)


def _version(value: str | None) -> str:
    return NO_PRODUCTION if value in (None, NO_PRODUCTION) else f"v{value}"


def _check_problem(
    check: CheckEvidence,
    staging_version: str,
    production_version: str | None,
    policy: PromotionPolicy,
) -> str | None:
    """One line for a check that does not vouch for this staging version now, else None."""
    if check.status is CheckStatus.NOT_EVALUATED:
        return f"{check.name}: never evaluated; materialize backtest_report first"
    if check.status is CheckStatus.UNFINISHED:
        return f"{check.name}: latest evaluation did not finish (run {check.run_id[:8]})"
    reasons = []
    if check.status is CheckStatus.FAILED:
        reasons.append(f"FAILED — {check.description or 'see the check'}")
    if check.staging_version != staging_version:
        reasons.append(
            f"stale — evaluated staging {_version(check.staging_version)}, "
            f"current staging is v{staging_version}"
        )
    current = production_version or NO_PRODUCTION
    # Re-promoting the version that is already production only finishes an interrupted export.
    if (
        check.production_version is not None
        and check.production_version != current
        and current != staging_version
    ):
        reasons.append(
            f"stale — compared against production {_version(check.production_version)}, "
            f"production is now {_version(current)}"
        )
    changed = policy.differences(check.policy)
    if changed:
        reasons.append(
            "judged under another promotion policy than the deployed one: " + "; ".join(changed)
        )
    return f"{check.name}: " + "; ".join(reasons) if reasons else None


def decide_promotion(facts: PromotionFacts, *, override: bool, reason: str) -> Decision:
    """Every reason not to promote, each once, in the user's words."""
    refusals: list[str] = []
    problems: list[str] = []
    staging = facts.staging_version
    if staging is None:
        refusals.append("no staging model: run retrain_job (staging_model and backtest_report)")
    if override and not reason.strip():
        refusals.append("override needs a written reason in the `reason` field")
    if staging is not None:
        for check in facts.checks:
            problem = _check_problem(check, staging, facts.production_version, facts.policy)
            if problem:
                problems.append(problem)
        targets = {c.backtest_id for c in facts.checks if c.backtest_id is not None}
        if len(targets) > 1:
            problems.append(
                "the checks evaluated different backtest_report materializations; "
                "materialize backtest_report with its checks again"
            )
        if facts.rolled_back_version == staging:
            problems.append(
                f"v{staging} was rolled back out of production (now "
                f"{_version(facts.production_version)}); promoting it again needs an override"
            )
    return Decision(
        staging_version=staging,
        problems=tuple(problems),
        refusals=tuple(refusals),
        override=override,
        reason=reason.strip(),
        checks_total=len(facts.checks),
    )


def comparable_production(staging: Recipe, production: Recipe | None) -> str | None:
    """Why production's recipe is left out of the paired comparison, or None to include it
    (`production` None: its registry version records no recipe)."""
    if production is None:
        return "its registry version records no recipe to walk forward"
    return production.comparable_with(staging)


def awaiting_review(
    requested_for: str | None,
    requested_at: float | None,
    monitored: str,
    monitored_is_staging: bool,
    monitored_created_at: float,
) -> bool:
    """A drift retrain was requested and its answer awaits a person: the monitored model is the
    one asked about, or (nothing in production) the staging version that retrain produced."""
    if requested_for is None or requested_at is None:
        return False
    if requested_for == monitored:
        return True
    return monitored_is_staging and monitored_created_at > requested_at
