"""Promotion: the criteria a candidate must meet and the one decision that lets it into production.

Pure (no Dagster): the orchestration layer gathers facts from the instance and the registry and
applies what `decide_promotion` returns.
"""

from mlplatform.promotion.criteria import (
    BLOCKING_CRITERIA,
    CRITERION_DESCRIPTIONS,
    PRODUCTION,
    STAGING,
    WARNING_CRITERIA,
    Verdict,
    evaluate_criteria,
)
from mlplatform.promotion.decision import (
    NO_PRODUCTION,
    CheckEvidence,
    CheckStatus,
    Decision,
    PromotionFacts,
    awaiting_review,
    comparable_production,
    decide_promotion,
)
from mlplatform.promotion.policy import PolicyError, PromotionPolicy

__all__ = [
    "BLOCKING_CRITERIA",
    "CRITERION_DESCRIPTIONS",
    "NO_PRODUCTION",
    "PRODUCTION",
    "STAGING",
    "WARNING_CRITERIA",
    "CheckEvidence",
    "CheckStatus",
    "Decision",
    "PolicyError",
    "PromotionFacts",
    "PromotionPolicy",
    "Verdict",
    "awaiting_review",
    "comparable_production",
    "decide_promotion",
    "evaluate_criteria",
]
