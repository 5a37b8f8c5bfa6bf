"""Pure training package: date splits, the search space, Optuna tuning, LightGBM fit, versions.

LightGBM's OpenMP threads busy-wait by default; on a shared machine with more runnable threads
than cores that makes a 2-thread fit up to ~50x slower (measured: 21 s instead of 0.25 s). The
passive wait policy is read once, when the OpenMP runtime loads, so it must be set before
lightgbm is first imported; setdefault leaves an explicit user choice alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mlplatform.training.candidate import Candidate, build_candidate
from mlplatform.training.dataset import (
    Block,
    DateWindow,
    LabelledData,
    Windows,
    labelled_rows,
    plan_windows,
)
from mlplatform.training.model import predict_up_proba, train_model
from mlplatform.training.recipe import Recipe, walk_forward_predictions
from mlplatform.training.search_space import (
    BASE_PARAMS,
    DEFAULT_PARAMS,
    SEARCH_SPACE,
    suggest_params,
    to_lgb_params,
)
from mlplatform.training.splits import (
    Fold,
    SplitError,
    rows_for,
    walk_forward_folds,
)
from mlplatform.training.tuning import (
    RowSample,
    StudySpec,
    TrialRecord,
    TuningError,
    TuningResult,
    run_study,
    validate_tuning_args,
)
from mlplatform.training.versioning import (
    VersionFacts,
    next_version,
    params_hash,
    recipe_from_tags,
    recipe_tags,
)

__all__ = [
    "BASE_PARAMS",
    "DEFAULT_PARAMS",
    "SEARCH_SPACE",
    "Block",
    "Candidate",
    "DateWindow",
    "Fold",
    "LabelledData",
    "Recipe",
    "RowSample",
    "SplitError",
    "StudySpec",
    "TrialRecord",
    "TuningError",
    "TuningResult",
    "VersionFacts",
    "Windows",
    "build_candidate",
    "labelled_rows",
    "next_version",
    "params_hash",
    "plan_windows",
    "predict_up_proba",
    "recipe_from_tags",
    "recipe_tags",
    "rows_for",
    "run_study",
    "suggest_params",
    "to_lgb_params",
    "train_model",
    "validate_tuning_args",
    "walk_forward_folds",
    "walk_forward_predictions",
]
