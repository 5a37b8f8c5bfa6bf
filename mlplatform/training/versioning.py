"""Semantic versions for model versions, derived from what changed (DESIGN.md).

MAJOR: the feature schema or the label definition changed (consumers must change their inputs or
their reading of the output). MINOR: the hyperparameters changed. PATCH: only the training data
changed, or nothing did (a retrain on the same inputs still registers a new version).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplatform.training.recipe import Recipe

FIRST_VERSION = "1.0.0"
# Keys that change how fast or how loudly LightGBM runs, not the model it builds.
NON_MODEL_KEYS = frozenset({"verbosity", "verbose", "num_threads", "n_jobs", "nthread"})
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class VersionFacts:
    """What a model version was built from. `version` is None for a version not yet numbered."""

    version: str | None
    feature_schema_hash: str
    label_definition: str
    params_hash: str
    data_fingerprint: str


def _canonical(value: Any) -> Any:
    """JSON-safe value with numpy scalars unwrapped and integral floats kept apart from ints."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return float(repr(value))
    return value


def params_hash(params: Mapping[str, Any]) -> str:
    """sha256 of the params that shape the model (key order and run-time knobs ignored).

    Include the number of boosting rounds in `params` when it is part of what you version.
    """
    kept = {k: v for k, v in params.items() if k not in NON_MODEL_KEYS}
    text = json.dumps(_canonical(kept), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def parse_version(version: str) -> tuple[int, int, int]:
    match = _SEMVER.match(version.strip())
    if not match:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def bump_kind(previous: VersionFacts | None, current: VersionFacts) -> str:
    """'first', 'major', 'minor' or 'patch' (why the version moves; handy as metadata)."""
    if previous is None:
        return "first"
    if (
        previous.feature_schema_hash != current.feature_schema_hash
        or previous.label_definition != current.label_definition
    ):
        return "major"
    if previous.params_hash != current.params_hash:
        return "minor"
    return "patch"


def next_version(previous: VersionFacts | None, current: VersionFacts) -> str:
    """The version for `current` given the facts of the latest registered version."""
    kind = bump_kind(previous, current)
    if kind == "first":
        return FIRST_VERSION
    assert previous is not None
    if previous.version is None:
        raise ValueError("previous.version is None: the previous model version has no number")
    major, minor, patch = parse_version(previous.version)
    if kind == "major":
        return f"{major + 1}.0.0"
    if kind == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


# Registry tags that hold a version's recipe, so production's can be walked forward again.
RECIPE_TAGS = ("params", "num_boost_round", "feature_schema_hash", "label_definition")


def recipe_tags(recipe: Recipe) -> dict[str, str]:
    shaping = {**recipe.params, "num_boost_round": recipe.num_boost_round}
    if recipe.max_training_rows is not None:  # a sampled fit is another model: a MINOR bump
        shaping["max_training_rows"] = recipe.max_training_rows
    return {
        "params": json.dumps(recipe.params, sort_keys=True, default=str),
        "num_boost_round": str(recipe.num_boost_round),
        "feature_schema_hash": recipe.feature_schema_hash,
        "label_definition": recipe.label_definition,
        "max_training_rows": str(recipe.max_training_rows),
        "params_hash": params_hash(shaping),
        "recipe_key": recipe.key,
    }


def recipe_from_tags(tags: Mapping[str, str]) -> Recipe | None:
    """The recipe a registry version was built from, or None when its tags do not record one."""
    if any(key not in tags for key in RECIPE_TAGS):
        return None
    return Recipe(
        params=json.loads(tags["params"]),
        num_boost_round=int(tags["num_boost_round"]),
        feature_schema_hash=tags["feature_schema_hash"],
        label_definition=tags["label_definition"],
        # Versions registered before the cap existed trained on every row.
        max_training_rows=_optional_int(tags.get("max_training_rows", "None")),
    )


def _optional_int(text: str) -> int | None:
    return None if text == "None" else int(text)
