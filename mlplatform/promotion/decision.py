"""May the current staging version go to production? Decided here, and only here.

The Dagster layer gathers the facts (which versions the aliases point at, the latest evaluation
of every promotion check and the backtest it targeted) and applies the Decision; every rule is a
few lines below: failed or unfinished checks, stale checks (another staging or production
version since), checks spread over several backtests, a version that was rolled back out of
production, the production alias moved outside the platform, and the override with its
written reason. A refusal is a verdict for a person: each problem once, then only the next steps
that can help with those problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mlplatform.promotion.policy import PromotionPolicy
from mlplatform.training import Recipe

NO_PRODUCTION = "none"


# What a person does next, in the words every message uses (gate, CLI summary, notifications).
PROMOTE_STEP = (
    "promote it (a person's decision): UI: Assets → production_model → Materialize; "
    'CLI: make promote REASON="..."'
)
OVERRIDE_STEP = (
    "promote anyway, recorded with your reason: UI: Materialize production_model with "
    "Launchpad config {override: true, reason: '...'}; CLI: make promote OVERRIDE=1 "
    'REASON="..."'
)


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
    alias_moved_outside: str | None = None  # the audit's message when production was moved
    checks_shown: int = 0  # every check on backtest_report (warnings too), as the UI counts them
    shadow_days: int = 0  # scored days with outcomes the staging version spent in shadow


class Problem(StrEnum):
    """Why a check does not vouch for the staging version, by what can put it right."""

    FAILED = "failed"  # a verdict on this version: re-running the same backtest cannot change it
    STALE = "stale"  # evaluated another staging/production version or policy: evaluate again
    ROLLED_BACK = "rolled back"  # taken out of production: only an override brings it back
    SHADOW = "shadow"  # fewer days in shadow than the policy asks: wait, or override


@dataclass(frozen=True)
class Decision:
    staging_version: str | None
    problems: tuple[tuple[Problem, str], ...]  # each problem once, in the user's words
    refusals: tuple[str, ...]  # what no override can get past
    override: bool
    reason: str
    checks_total: int  # the checks that block promotion
    checks_failing: int = 0  # of those, the ones that do not vouch for this version now
    checks_shown: int = 0  # every check on backtest_report, warnings included

    @property
    def allowed(self) -> bool:
        return not self.refusals and (not self.problems or self.override)

    @property
    def overridden(self) -> bool:
        return self.allowed and bool(self.problems)

    @property
    def problem_lines(self) -> list[str]:
        return [text for _, text in self.problems]

    def headline(self) -> str:
        """The verdict in one line."""
        if self.refusals:
            return "promotion refused: " + "; ".join(self.refusals)
        head = f"promotion of staging v{self.staging_version} refused"
        if not self.checks_failing:
            return f"{head}: its checks vouch for it, but"
        warn_only = self.checks_shown - self.checks_total
        aside = (
            f" (of the {self.checks_shown} checks on backtest_report, {warn_only} only "
            f"warn{'s' if warn_only == 1 else ''})"
            if warn_only > 0
            else ""
        )
        return (
            f"{head}: {self.checks_failing} of the {self.checks_total} promotion checks do not "
            f"vouch for it{aside}"
        )

    def next_steps(self) -> list[str]:
        """Only the steps that can help with these problems."""
        if self.refusals:
            return []
        kinds = {kind for kind, _ in self.problems}
        steps = []
        if Problem.STALE in kinds:
            steps.append(
                "evaluate this version again: materialize backtest_report (its checks run "
                "with it; UI: Assets → backtest_report → Materialize)"
            )
        if Problem.FAILED in kinds:
            steps.append(
                "a failed check is a verdict on this version: re-running its backtest gives the "
                "same answer; a new retrain (new bars or parameters) may give a promotable one"
            )
        if Problem.SHADOW in kinds:
            steps.append(
                "let the daily refresh score it beside production for the days that remain "
                "(data_refresh_job, or make predict)"
            )
        if Problem.ROLLED_BACK in kinds:
            steps.append(
                "a rolled-back version comes back only by an override with a written reason; "
                "a retrain cannot make it promotable"
            )
        steps.append(f"or {OVERRIDE_STEP}")
        return steps

    def message(self) -> str:
        """The verdict first, each problem once, then the next steps (blank lines between, so
        Markdown in the UI keeps them apart)."""
        lines = [self.headline(), ""]
        lines += [f"- {text}" for text in self.problem_lines]
        steps = self.next_steps()
        if steps:
            lines += ["", "Next:"]
            lines += [f"- {step}" for step in steps]
        return "\n".join(lines)


def _version(value: str | None) -> str:
    return NO_PRODUCTION if value in (None, NO_PRODUCTION) else f"v{value}"


def _check_problem(
    check: CheckEvidence,
    staging_version: str,
    production_version: str | None,
    policy: PromotionPolicy,
) -> tuple[Problem, str] | None:
    """One line for a check that does not vouch for this staging version now, else None."""
    if check.status is CheckStatus.NOT_EVALUATED:
        return Problem.STALE, f"{check.name}: never evaluated"
    if check.status is CheckStatus.UNFINISHED:
        return Problem.STALE, (
            f"{check.name}: its latest evaluation did not finish (run {check.run_id[:8]})"
        )
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
    if not reasons:
        return None
    # A failure judged on this very version under this policy cannot be re-run away.
    fresh = len(reasons) == 1 and check.status is CheckStatus.FAILED
    return (Problem.FAILED if fresh else Problem.STALE), f"{check.name}: " + "; ".join(reasons)


def decide_promotion(facts: PromotionFacts, *, override: bool, reason: str) -> Decision:
    """Every reason not to promote, each once, in the user's words."""
    refusals: list[str] = []
    problems: list[tuple[Problem, str]] = []
    staging = facts.staging_version
    if facts.alias_moved_outside:
        refusals.append(
            f"{facts.alias_moved_outside} Put it right first: launch rollback_job with "
            "to_version set to the version that should serve (it is recorded), then promote"
        )
    if staging is None:
        refusals.append("no staging model: run retrain_job (staging_model and backtest_report)")
    if override and not reason.strip():
        refusals.append("override needs a written reason in the `reason` field")
    if staging is not None:
        for check in facts.checks:
            problem = _check_problem(check, staging, facts.production_version, facts.policy)
            if problem:
                problems.append(problem)
    failing = len(problems)
    if staging is not None:
        targets = {c.backtest_id for c in facts.checks if c.backtest_id is not None}
        if len(targets) > 1:
            problems.append(
                (
                    Problem.STALE,
                    "the checks evaluated different backtest_report materializations",
                )
            )
        wanted = facts.policy.min_shadow_days
        if facts.shadow_days < wanted:
            problems.append(
                (
                    Problem.SHADOW,
                    f"v{staging} has {facts.shadow_days} of the {wanted} days in shadow beside "
                    f"production the policy asks ({wanted - facts.shadow_days} to go)",
                )
            )
        if facts.rolled_back_version == staging:
            problems.append(
                (
                    Problem.ROLLED_BACK,
                    f"v{staging} was rolled back out of production (now "
                    f"{_version(facts.production_version)})",
                )
            )
    return Decision(
        staging_version=staging,
        problems=tuple(problems),
        refusals=tuple(refusals),
        override=override,
        reason=reason.strip(),
        checks_total=len(facts.checks),
        checks_failing=failing,
        checks_shown=facts.checks_shown,
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
