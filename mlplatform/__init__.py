"""mlplatform: a LightGBM price-direction model kept trained, tuned, validated, promoted and
monitored as a Dagster code location. Domain logic lives in Dagster-free packages (data, features,
training, evaluation, monitoring, registry, notifications); `orchestration` wires them as assets."""

__version__ = "0.1.0"
