"""What the retrain and monitoring read from and write to the registry: the production
parameters to warm-start from, a staging candidate's semver, tags and files, and the version
drift is measured against."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlplatform import config
from mlplatform.data import fingerprint
from mlplatform.monitoring import model_reference
from mlplatform.monitoring.model_drift import MonitoredModel
from mlplatform.registry.store import TAG_SEMVER, client_for, get_alias_version, latest_version
from mlplatform.registry.versions import ModelPackage
from mlplatform.training import (
    Candidate,
    LabelledData,
    VersionFacts,
    next_version,
    recipe_tags,
)
from mlplatform.training.retrain import TunedParams

# The tags the semver rule compares (the fields of training.versioning.VersionFacts).
FACT_TAGS = ("feature_schema_hash", "label_definition", "params_hash", "data_fingerprint")
MAX_TAGGED_SHARPES = 400  # keeps the tag under MLflow's 5000-character limit


def production_params(tracking_uri: str, name: str) -> dict[str, Any] | None:
    """The production version's LightGBM params (its `params` tag), or None."""
    version = get_alias_version(tracking_uri, name, config.PRODUCTION_ALIAS)
    if version is None or "params" not in version.tags:
        return None
    return json.loads(version.tags["params"])


def monitored_model(tracking_uri: str, name: str) -> MonitoredModel | None:
    """The production version; the staging version when nothing is in production; or None."""
    for alias in (config.PRODUCTION_ALIAS, config.STAGING_ALIAS):
        version = get_alias_version(tracking_uri, name, alias)
        if version is not None:
            return MonitoredModel(
                alias=alias,
                version=str(version.version),
                created_at=version.creation_timestamp / 1000,
                tags=dict(version.tags),
            )
    return None


def latest_facts(tracking_uri: str, name: str) -> VersionFacts | None:
    """What the most recently registered version was built from (its semver included), or None."""
    latest = latest_version(tracking_uri, name)
    if latest is None:
        return None
    tags = client_for(tracking_uri).get_model_version(name, latest.version).tags
    return VersionFacts(
        version=tags.get(TAG_SEMVER),
        **{key: tags.get(key) for key in FACT_TAGS},  # type: ignore[arg-type]
    )


def sharpe_summary(values: Sequence[float]) -> list[float]:
    """The trials' Sharpes for a registry tag: all of them, or evenly spaced quantiles of many
    (their dispersion, which is what the Deflated Sharpe Ratio uses, is kept)."""
    finite = np.sort(np.asarray([v for v in values if np.isfinite(v)], dtype=float))
    if len(finite) > MAX_TAGGED_SHARPES:
        finite = np.quantile(finite, np.linspace(0.0, 1.0, MAX_TAGGED_SHARPES))
    return [round(float(v), 6) for v in finite]


def staging_package(
    candidate: Candidate,
    data: LabelledData,
    prices: pd.DataFrame,
    tuned: TunedParams,
    *,
    previous: VersionFacts | None,
    dagster_run_id: str,
    data_source: str,
) -> ModelPackage:
    """The candidate as the registry stores it: a semver that says what changed since `previous`,
    the tags production's walk-forward and the evaluation's Deflated Sharpe read back (the study
    that tuned it), the drift reference of its training rows, and the export's metadata."""
    recipe, windows = candidate.recipe, candidate.windows
    refit = data.within(windows.refit)
    tags = recipe_tags(recipe)
    facts = VersionFacts(
        version=None,
        feature_schema_hash=recipe.feature_schema_hash,
        label_definition=recipe.label_definition,
        params_hash=tags["params_hash"],
        data_fingerprint=fingerprint(prices),
    )
    tags |= {
        "semver": next_version(previous, facts),
        "data_fingerprint": facts.data_fingerprint,
        "training_window": json.dumps(windows.refit.to_dict()),
        "evaluation_window": json.dumps(windows.evaluation.to_dict()),
        "dagster_run_id": dagster_run_id,
        # The evaluation's Deflated Sharpe Ratio is taken against this version's own study.
        "tuning_study": tuned.study_name,
        "tuning_trials": str(tuned.n_trials_total),
        "trial_sharpes": json.dumps(sharpe_summary(tuned.trial_sharpes)),
    }
    return ModelPackage(
        booster=candidate.booster,
        semver=tags["semver"],
        tags=tags,
        input_example=refit.X.head(5),
        reference=model_reference(
            # what the model learnt from, not every row
            candidate.trained.X,
            candidate.trained.y,
            candidate.out_of_sample,
            config.DRIFT.n_bins,
        ),
        metadata={
            **tags,
            "params": recipe.params,
            "features": list(refit.X.columns),
            "training_rows": candidate.training_rows,
            "horizon": windows.horizon,
            "data": {
                "source": data_source,
                "tickers": int(prices["ticker"].nunique()),
                "bars": len(prices),
                "first_date": str(pd.Timestamp(prices["date"].min()).date()),
                "last_date": str(pd.Timestamp(prices["date"].max()).date()),
            },
        },
    )
