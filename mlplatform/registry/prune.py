"""Pruning the registry by the retention policy: old versions go with what belongs only to them.

The protocol, as the other registry operations: take the registry lock and converge
(recovery.py); read the facts and plan (retention.py); name everything that will go in an
intent (journal.py): the versions, their MLflow runs and nested trial runs, their MLflow models,
the Optuna studies and report files no kept version shares; then remove (removal.py) and clear
the intent. A process killed part way leaves the intent, and the next registry command or
`repair` finishes the removal. A dry run reads and plans only.

Stored asset values are not kept per version or per run (the IO manager keeps one value per
asset and partition, replaced by the next run), so none belongs to a removed version alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlplatform import config
from mlplatform.registry import export
from mlplatform.registry.aliases import previous_production
from mlplatform.registry.errors import UnfinishedOperation
from mlplatform.registry.journal import Intent, clear_intent, read_intent, write_intent
from mlplatform.registry.projection import archived_versions, served_production
from mlplatform.registry.recovery import converge_locked
from mlplatform.registry.removal import Removal, remove
from mlplatform.registry.retention import (
    Protection,
    PrunePlan,
    Registered,
    RetentionPolicy,
    plan_prune,
)
from mlplatform.registry.store import (
    TAG_PENDING,
    Registry,
    alias_version,
    all_versions,
    is_not_found,
    now_utc,
)

PARENT_RUN_TAG = "mlflow.parentRunId"
LOGGED_MODEL_SOURCE = "models:/m-"
STUDY_TAG = "tuning_study"  # registry/staging.py: the study that tuned the version
DAGSTER_RUN_TAG = "dagster_run_id"  # registry/staging.py: the retrain that registered it


@dataclass
class PruneReport:
    """What a prune planned and removed (or, dry, would remove)."""

    policy: RetentionPolicy
    plan: PrunePlan
    removal: Removal
    dry_run: bool
    converged: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        r = self.removal
        out = [f"policy: {self.policy.describe()}"]
        if self.converged:
            out.append(f"first: {self.converged}")
        out += self.plan.lines()
        out.append(
            f"{verb}: {len(r.versions)} version(s), {len(r.runs)} MLflow run(s), "
            f"{len(r.logged_models)} MLflow model(s), {len(r.studies)} Optuna study(ies), "
            f"{len(r.reports)} report(s)"
        )
        return out + self.notes


def _roles(client: MlflowClient, registry: Registry) -> dict[str, set[Protection]]:
    """The registry's own reasons to keep each version, whatever the policy says."""
    name = registry.name
    roles: dict[str, set[Protection]] = {}

    def add(version: object, why: Protection) -> None:
        if version not in (None, ""):
            roles.setdefault(str(version), set()).add(why)

    production = alias_version(client, name, config.PRODUCTION_ALIAS)
    served = served_production(client, name)  # models/production, when the alias moved by hand
    for mv in (production, served):
        if mv is not None:
            add(mv.version, Protection.PRODUCTION)
            add(previous_production(client, mv), Protection.PREVIOUS_PRODUCTION)
    staging = alias_version(client, name, config.STAGING_ALIAS)
    if staging is not None:
        add(staging.version, Protection.STAGING)
    for mv in archived_versions(client, name, registry.retention):
        add(mv.version, Protection.ARCHIVED)
    for folder in export.list_archive(Path(registry.export_root) / export.ARCHIVE_DIR):
        add(export.archive_registry_version(folder), Protection.ARCHIVED)
    intent = read_intent(client, name)
    if intent is not None and intent.op != "prune":  # a prune's versions are going anyway
        for key in ("from_version", "to_version", "version", "previous_staging"):
            add(intent.data.get(key), Protection.INTENT)
    return roles


def _registered(mv: ModelVersion) -> Registered:
    return Registered(str(mv.version), datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC))


def _runs_of(client: MlflowClient, mv: ModelVersion) -> set[str]:
    """The version's run and every run nested under it (tuning's trial runs)."""
    if not mv.run_id:
        return set()
    try:
        experiment = client.get_run(mv.run_id).info.experiment_id
    except MlflowException as exc:
        if is_not_found(exc):  # the run is gone already: nothing of it to remove
            return set()
        raise
    found, todo = set(), [mv.run_id]
    while todo:
        run_id = todo.pop()
        found.add(run_id)
        token = None
        while True:  # page by page: a study may have more trials than one page holds
            page = client.search_runs(
                [experiment],
                filter_string=f"tags.`{PARENT_RUN_TAG}` = '{run_id}'",
                page_token=token,
            )
            todo += [c.info.run_id for c in page if c.info.run_id not in found]
            token = page.token
            if not token:
                break
    return found


def _reports_of(reports_dir: Path | None, mv: ModelVersion) -> set[str]:
    """Its backtest and drift reports (named by version) and its study report (named by the
    Dagster run that tuned and registered it)."""
    if reports_dir is None or not Path(reports_dir).is_dir():
        return set()
    run = mv.tags.get(DAGSTER_RUN_TAG)
    own = {f"backtest_v{mv.version}.html"} | ({f"optuna_{run}.html"} if run else set())
    return {
        p.name
        for p in Path(reports_dir).iterdir()
        if p.name in own or (p.name.startswith(f"drift_v{mv.version}_") and p.suffix == ".html")
    }


def _logged_model(mv: ModelVersion) -> str | None:
    """The MLflow 3 logged model a version was registered from (source models:/m-…), whose
    files live beside the run's, not in them."""
    if mv.model_id:
        return str(mv.model_id)
    source = mv.source or ""
    return source.removeprefix("models:/") if source.startswith(LOGGED_MODEL_SOURCE) else None


def _belongings(client: MlflowClient, registry: Registry, mv: ModelVersion) -> Removal:
    study = mv.tags.get(STUDY_TAG)
    model = _logged_model(mv)
    return Removal(
        versions=[str(mv.version)],
        runs=sorted(_runs_of(client, mv)),
        logged_models=[model] if model else [],
        studies=[study] if study else [],
        reports=sorted(_reports_of(registry.reports_dir, mv)),
    )


def _removal(client: MlflowClient, registry: Registry, plan: PrunePlan) -> Removal:
    """What goes with the plan's versions: what belongs to them and to no kept version."""
    versions = [mv for mv in all_versions(client, registry.name) if TAG_PENDING not in mv.tags]
    going = [mv for mv in versions if str(mv.version) in plan.remove]
    staying = [mv for mv in versions if str(mv.version) not in plan.remove]
    kept = Removal()
    for mv in staying:
        own = _belongings(client, registry, mv)
        for key in ("runs", "logged_models", "studies", "reports"):
            getattr(kept, key).extend(getattr(own, key))
    out = Removal(versions=list(plan.remove))
    for mv in sorted(going, key=lambda mv: int(mv.version)):
        own = _belongings(client, registry, mv)
        for key in ("runs", "logged_models", "studies", "reports"):
            items = getattr(out, key)
            items += [x for x in getattr(own, key) if x not in getattr(kept, key) + items]
    return out


def _plan(client: MlflowClient, registry: Registry, policy: RetentionPolicy) -> PrunePlan:
    registered = [
        _registered(mv) for mv in all_versions(client, registry.name) if TAG_PENDING not in mv.tags
    ]
    return plan_prune(policy, registered, _roles(client, registry), now_utc())


def prune(registry: Registry, policy: RetentionPolicy, *, dry_run: bool = False) -> PruneReport:
    """Remove what `policy` lets go (see the module docstring); `dry_run` changes nothing."""
    client = registry.client
    if dry_run:
        plan = _plan(client, registry, policy)
        return PruneReport(policy, plan, _removal(client, registry, plan), dry_run=True)
    with registry.lock():
        convergence = converge_locked(registry)
        plan = _plan(client, registry, policy)
        removal = _removal(client, registry, plan)
        report = PruneReport(
            policy, plan, removal, dry_run=False,
            converged=convergence.line() if convergence.changed else "",
        )  # fmt: skip
        if not removal.versions:
            return report
        write_intent(client, Intent("prune", registry.name, removal.to_dict()))
        try:
            remove(registry, removal)
        except Exception as exc:
            raise UnfinishedOperation(
                f"prune of {len(removal.versions)} version(s) stopped part way "
                f"({type(exc).__name__}: {exc}); its intent is kept on registered model "
                f"{registry.name!r}: the next registry command or `make repair` finishes it"
            ) from exc
        clear_intent(client, registry.name)
    return report
