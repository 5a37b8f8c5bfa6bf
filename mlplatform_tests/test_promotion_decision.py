"""The one promotion decision: every rule, each problem named once, the next step spelled out."""

from __future__ import annotations

import pytest

from mlplatform.promotion import (
    BLOCKING_CRITERIA,
    CheckEvidence,
    CheckStatus,
    PolicyError,
    PromotionFacts,
    PromotionPolicy,
    awaiting_review,
    comparable_production,
    decide_promotion,
)
from mlplatform.training import Recipe


def _passed(name: str, staging: str = "5", production: str = "3", backtest: int = 42):
    return CheckEvidence(
        name,
        CheckStatus.PASSED,
        description="fine",
        run_id="abcdef123456",
        backtest_id=backtest,
        staging_version=staging,
        production_version=production,
        policy=POLICY.to_dict(),
    )


POLICY = PromotionPolicy()


def _facts(*checks: CheckEvidence, staging="5", production="3", rolled_back=None):
    by_name = {c.name: c for c in checks}
    return PromotionFacts(
        staging_version=staging,
        production_version=production,
        rolled_back_version=rolled_back,
        checks=tuple(by_name.get(name, _passed(name)) for name in BLOCKING_CRITERIA),
        policy=POLICY,
    )


def test_every_check_passed_on_this_staging_version_promotes() -> None:
    decision = decide_promotion(_facts(), override=False, reason="")
    assert decision.allowed and not decision.overridden and not decision.problems


def test_a_failed_check_refuses_once_with_count_and_next_steps() -> None:
    failed = CheckEvidence(
        "beats_majority_class",
        CheckStatus.FAILED,
        description="p = 0.2 by date",
        backtest_id=42,
        staging_version="5",
        production_version="3",
        policy=POLICY.to_dict(),
    )
    decision = decide_promotion(_facts(failed), override=False, reason="")
    assert not decision.allowed
    message = decision.message()
    assert message.count("beats_majority_class") == 1
    assert "FAILED — p = 0.2 by date" in message
    assert f"1 of the {len(BLOCKING_CRITERIA)} promotion checks do not vouch for it" in message
    # a failure judged on this very version: re-running its backtest cannot help
    assert "materialize backtest_report" not in message and "a new retrain" in message
    assert "override: true" in message and 'make promote OVERRIDE=1 REASON="..."' in message


def test_a_check_both_failed_and_stale_is_listed_once() -> None:
    both = CheckEvidence(
        "predictions_not_degenerate",
        CheckStatus.FAILED,
        description="up 99%",
        backtest_id=42,
        staging_version="4",
        production_version="3",
    )
    decision = decide_promotion(_facts(both), override=False, reason="")
    assert len(decision.problems) == 1
    assert "FAILED" in decision.problem_lines[0] and "stale" in decision.problem_lines[0]
    assert "materialize backtest_report" in decision.message()  # evaluating v5 may help


@pytest.mark.parametrize(
    ("check", "words"),
    [
        (CheckEvidence("accuracy_vs_production", CheckStatus.NOT_EVALUATED), "never evaluated"),
        (
            CheckEvidence("accuracy_vs_production", CheckStatus.UNFINISHED, run_id="r" * 12),
            "did not finish",
        ),
        (_passed("accuracy_vs_production", staging="4"), "evaluated staging v4"),
        (_passed("accuracy_vs_production", production="2"), "production is now v3"),
        (_passed("accuracy_vs_production", production="none"), "compared against production none"),
    ],
)
def test_unfinished_or_stale_evidence_refuses(check: CheckEvidence, words: str) -> None:
    decision = decide_promotion(_facts(check), override=False, reason="")
    assert not decision.allowed
    assert len(decision.problems) == 1 and words in decision.problem_lines[0]


def test_re_promoting_production_is_not_stale() -> None:
    facts = _facts(*(_passed(n, staging="5", production="3") for n in BLOCKING_CRITERIA))
    facts = PromotionFacts("5", "5", None, facts.checks, POLICY)
    assert decide_promotion(facts, override=False, reason="").allowed


def test_checks_of_different_backtests_refuse() -> None:
    decision = decide_promotion(
        _facts(_passed("accuracy_vs_production", backtest=43)), override=False, reason=""
    )
    assert not decision.allowed
    assert "different backtest_report materializations" in decision.message()


def test_a_rolled_back_version_needs_an_override() -> None:
    facts = _facts(rolled_back="5")
    refused = decide_promotion(facts, override=False, reason="")
    assert not refused.allowed and "rolled back out of production" in refused.message()
    forced = decide_promotion(facts, override=True, reason="the bug was in the data feed")
    assert forced.allowed and forced.overridden


def test_override_needs_a_reason_and_cannot_invent_a_staging_model() -> None:
    failed = CheckEvidence("beats_majority_class", CheckStatus.FAILED, staging_version="5")
    no_reason = decide_promotion(_facts(failed), override=True, reason="  ")
    assert not no_reason.allowed and "written reason" in no_reason.message()
    with_reason = decide_promotion(_facts(failed), override=True, reason="reviewed by hand")
    assert with_reason.allowed and with_reason.overridden and with_reason.reason
    nothing = PromotionFacts(None, None, None, (), POLICY)
    assert not decide_promotion(nothing, override=True, reason="please").allowed


def test_production_recipe_is_compared_only_when_comparable() -> None:
    recipe = Recipe({"seed": 1}, 10, "schema-a", "up [horizon=1]")
    assert comparable_production(recipe, recipe) is None
    other_schema = Recipe({"seed": 1}, 10, "schema-b", "up [horizon=1]")
    assert "feature schema" in str(comparable_production(recipe, other_schema))
    other_label = Recipe({"seed": 1}, 10, "schema-a", "up [horizon=5]")
    assert "another label" in str(comparable_production(recipe, other_label))
    assert "records no recipe" in str(comparable_production(recipe, None))


def test_drift_retrain_awaits_a_person() -> None:
    assert not awaiting_review(None, None, "production:3", False, 0.0)
    assert awaiting_review("production:3", 100.0, "production:3", False, 0.0)
    assert not awaiting_review("production:3", 100.0, "production:4", False, 200.0)
    # nothing in production: the staging version the retrain produced is the one under review
    assert awaiting_review("staging:3", 100.0, "staging:4", True, 200.0)
    assert not awaiting_review("staging:3", 100.0, "staging:2", True, 50.0)


def test_a_check_judged_under_another_policy_vouches_for_nothing() -> None:
    loosened = {**POLICY.to_dict(), "min_dsr": 0.0, "min_sharpe": -100000.0}
    check = CheckEvidence(
        "sharpe_after_costs_and_dsr",
        CheckStatus.PASSED,
        backtest_id=42,
        staging_version="5",
        production_version="3",
        policy=loosened,
    )
    decision = decide_promotion(_facts(check), override=False, reason="")
    assert not decision.allowed
    (problem,) = decision.problem_lines
    assert "another promotion policy" in problem
    assert "min_dsr 0.0 (deployed 0.95)" in problem and "min_sharpe -100000.0" in problem


def test_a_check_with_no_recorded_policy_vouches_for_nothing() -> None:
    check = CheckEvidence(
        "beats_majority_class", CheckStatus.PASSED, backtest_id=42, staging_version="5",
        production_version="3",
    )  # fmt: skip
    (problem,) = decide_promotion(_facts(check), override=False, reason="").problem_lines
    assert "no promotion policy was recorded" in problem


def test_policy_from_json_names_what_is_wrong() -> None:
    assert PromotionPolicy.from_json('{"min_dsr": 0.9}', source="ENV").min_dsr == 0.9
    with pytest.raises(PolicyError, match="ENV: not valid JSON"):
        PromotionPolicy.from_json("{min_dsr: 0.9", source="ENV")
    with pytest.raises(PolicyError, match=r"unknown threshold.*min_dsrr"):
        PromotionPolicy.from_json('{"min_dsrr": 0.9}', source="ENV")
    with pytest.raises(PolicyError, match=r"min_dsr=2.*\[0.0, 1.0\]"):
        PromotionPolicy.from_json('{"min_dsr": 2}', source="ENV")
    assert PromotionPolicy().fingerprint != PromotionPolicy(min_dsr=0.9).fingerprint


def test_too_few_days_in_shadow_refuse_until_they_pass_or_an_override() -> None:
    policy = PromotionPolicy(min_shadow_days=5)
    facts = _facts()
    waiting = PromotionFacts("5", "3", None, facts.checks, policy, shadow_days=3)
    refused = decide_promotion(waiting, override=False, reason="")
    assert not refused.allowed and "3 of the 5 days in shadow" in refused.message()
    assert "(2 to go)" in refused.message() and "daily refresh" in refused.message()
    assert decide_promotion(waiting, override=True, reason="reviewed the shadow by hand").allowed
    ready = PromotionFacts("5", "3", None, facts.checks, policy, shadow_days=5)
    assert decide_promotion(ready, override=False, reason="").allowed


def test_production_moved_outside_refuses_even_an_override() -> None:
    facts = _facts()
    moved = PromotionFacts(
        "5", "2", None, facts.checks, POLICY, alias_moved_outside="production points at v2."
    )
    decision = decide_promotion(moved, override=True, reason="anyway")
    assert not decision.allowed
    assert "production points at v2" in decision.message() and "rollback_job" in decision.message()
