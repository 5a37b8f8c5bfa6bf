"""Did every promotion check pass for exactly the current staging version?

A blocking check only blocks inside its own run, so production_model asks the instance. The
event-log calls used here are not all public API, so they stay in this one helper.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

BACKTEST_KEY = dg.AssetKey("backtest_report")


@dataclass(frozen=True)
class GateResult:
    staging_version: str
    problems: list[str]
    backtest_storage_id: int | None

    @property
    def passed(self) -> bool:
        return not self.problems


def _backtest_versions(
    instance: dg.DagsterInstance, storage_id: int
) -> tuple[str | None, str | None]:
    """(staging, production) versions a backtest_report materialization scored."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BACKTEST_KEY, storage_ids=[storage_id]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None, None
    metadata = records[0].asset_materialization.metadata
    staging = metadata.get("staging_version")
    production = metadata.get("production_version")
    return (
        None if staging is None else str(staging.value),
        None if production is None else str(production.value),
    )


def check_promotion_gate(
    instance: dg.DagsterInstance,
    staging_version: str,
    check_names: tuple[str, ...],
    production_version: str | None = None,
) -> GateResult:
    """Every named check's latest evaluation passed, on one backtest of this staging version
    against the production version that is current now (a rollback since makes it stale)."""
    problems: list[str] = []
    targets: set[int] = set()
    for name in check_names:
        key = dg.AssetCheckKey(BACKTEST_KEY, name)
        record = instance.get_latest_asset_check_evaluation_record(key)
        if record is None:
            problems.append(f"{name}: never evaluated; materialize backtest_report first")
            continue
        evaluation = record.evaluation
        # A failed or killed run leaves only the *planned* event (no `passed`): not evaluated.
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            problems.append(
                f"{name}: latest evaluation never completed (status {record.status.value}, "
                f"run {record.run_id[:8]})"
            )
            continue
        if not evaluation.passed:
            problems.append(f"{name}: FAILED — {evaluation.description or 'see the check'}")
        target = evaluation.target_materialization_data
        if target is None:
            problems.append(f"{name}: evaluation is not tied to a backtest_report materialization")
            continue
        targets.add(target.storage_id)
        evaluated, against = _backtest_versions(instance, target.storage_id)
        if evaluated != str(staging_version):
            problems.append(
                f"{name}: stale — evaluated staging v{evaluated}, current staging is "
                f"v{staging_version}; re-materialize backtest_report"
            )
        current = "none" if production_version is None else str(production_version)
        # Re-promoting the version that is already production only finishes a crashed export.
        already_production = current == str(staging_version)
        if against is not None and against != current and not already_production:
            problems.append(
                f"{name}: stale — compared against production "
                f"{'none' if against == 'none' else 'v' + against}, production is now "
                f"{'none' if current == 'none' else 'v' + current}; re-materialize backtest_report"
            )
    if len(targets) > 1:
        problems.append(
            "the checks evaluated different backtest_report materializations; "
            "re-materialize backtest_report with its checks"
        )
    return GateResult(
        staging_version=str(staging_version),
        problems=problems,
        backtest_storage_id=next(iter(targets)) if len(targets) == 1 else None,
    )
