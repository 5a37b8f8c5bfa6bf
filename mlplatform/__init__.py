"""mlplatform: a LightGBM price-direction model kept trained, tuned, validated, promoted and
monitored as a Dagster code location. Domain logic lives in Dagster-free packages (data, features,
training, evaluation, monitoring, registry, notifications); `orchestration` wires them as assets."""

import os

# LightGBM's OpenMP threads busy-wait by default; on a shared 2-core machine that made 2-thread
# fits up to 50x slower (21 s instead of 0.25 s). The policy is read once, when the OpenMP runtime
# loads, so it is set here, before anything can import lightgbm; an explicit choice is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MLflow draws a progress bar for every artifact it downloads (each registry read): noise on the
# console between the lines a person reads.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__version__ = "0.1.0"
