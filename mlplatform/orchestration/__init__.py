"""The Dagster layer: assets, checks, jobs, schedules, sensors and resources wiring the domain."""

import warnings

import dagster as dg

# Beta and preview APIs used on purpose (pandera's Dagster types, source code references,
# dagster-mlflow's run-finished hook): told once here rather than on every import, so the
# console of `make run` and `dagster dev` shows the lines a person reads.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
