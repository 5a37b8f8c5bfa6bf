"""The model registry (MLflow aliases and versions) and its models/ projection, Dagster-free.

Floors, each importing only the ones above it: errors, lock -> store (reading MLflow) and
export (folders on disk) -> journal (intents) -> projection (models/ from the aliases) ->
recovery (finish or undo, converge, repair; removal finishes a prune below it) -> versions
(register), aliases (promote, rollback), consistency (the checker), audit (alias moved outside
the platform) -> prune (the retention policy of retention.py, which imports nothing); staging
(what the retrain reads and writes) on top.
"""

from mlplatform.registry.aliases import (
    PromotionRecord,
    RollbackRecord,
    promote,
    rollback,
    smoke_predict,
)
from mlplatform.registry.audit import (
    AliasMove,
    audit_production_alias,
    recorded_moves,
    unrecorded_alias_move,
)
from mlplatform.registry.consistency import Problem, check_consistency
from mlplatform.registry.errors import (
    ArtifactLost,
    ExportIntegrityError,
    LockTimeout,
    PromotionError,
    RegistryError,
    RollbackError,
    StorageError,
    UnfinishedOperation,
)
from mlplatform.registry.export import (
    archive_dirname,
    archive_registry_version,
    list_archive,
    load_export_booster,
    verify_export,
)
from mlplatform.registry.journal import Intent, read_intent
from mlplatform.registry.prune import PruneReport, prune
from mlplatform.registry.recovery import Convergence, RepairReport, converge, repair
from mlplatform.registry.retention import (
    Protection,
    PrunePlan,
    Registered,
    RetentionPolicy,
    plan_prune,
)
from mlplatform.registry.runs import end_orphaned_runs, owner_tags, process_alive, process_gone
from mlplatform.registry.staging import (
    latest_facts,
    monitored_model,
    production_params,
    sharpe_summary,
    staging_package,
)
from mlplatform.registry.store import (
    ModelHandle,
    Registry,
    client_for,
    download_model_metadata,
    download_reference,
    get_alias_version,
    latest_version,
    load_booster,
    registry_tag,
)
from mlplatform.registry.versions import ModelPackage, record_evaluation, register

__all__ = [
    "AliasMove",
    "ArtifactLost",
    "Convergence",
    "ExportIntegrityError",
    "Intent",
    "LockTimeout",
    "ModelHandle",
    "ModelPackage",
    "Problem",
    "PromotionError",
    "PromotionRecord",
    "Protection",
    "PrunePlan",
    "PruneReport",
    "Registered",
    "Registry",
    "RegistryError",
    "RepairReport",
    "RetentionPolicy",
    "RollbackError",
    "RollbackRecord",
    "StorageError",
    "UnfinishedOperation",
    "archive_dirname",
    "archive_registry_version",
    "audit_production_alias",
    "check_consistency",
    "client_for",
    "converge",
    "download_model_metadata",
    "download_reference",
    "end_orphaned_runs",
    "get_alias_version",
    "latest_facts",
    "latest_version",
    "list_archive",
    "load_booster",
    "load_export_booster",
    "monitored_model",
    "owner_tags",
    "plan_prune",
    "process_alive",
    "process_gone",
    "production_params",
    "promote",
    "prune",
    "read_intent",
    "record_evaluation",
    "recorded_moves",
    "register",
    "registry_tag",
    "repair",
    "rollback",
    "sharpe_summary",
    "smoke_predict",
    "staging_package",
    "unrecorded_alias_move",
    "verify_export",
]
