"""Group `serving`: the daily scores (predictions, one partition per trading date, landing in
the prediction log) and how production does once the next bar arrives (live_performance),
with the checks that hold them honest and the decay check that asks for a retrain."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlplatform import config as settings
from mlplatform.features import outcomes
from mlplatform.monitoring.decay import Expectation
from mlplatform.monitoring.live import CHAMPION, LivePerformance, measure
from mlplatform.notifications import Notification, NotificationKind
from mlplatform.orchestration.assets.evaluation import EXPECTATION_TAG
from mlplatform.orchestration.metadata import ownership, rounded, rounded_metadata, table_metadata
from mlplatform.orchestration.resources import Notifier, PlatformStores
from mlplatform.promotion import PromotionPolicy
from mlplatform.registry import (
    ArtifactLost,
    load_export_booster,
    registry_tag,
)
from mlplatform.registry.export import ARCHIVE_DIR, archive_registry_version, list_archive
from mlplatform.registry.history import serving_at
from mlplatform.registry.store import TAG_SEMVER, model_text
from mlplatform.serving import (
    PredictionLog,
    ServingModel,
    features_of_date,
    score,
)
from mlplatform.serving.predict import CHALLENGER, ScoringError
from mlplatform.training import predict_up_proba

# Business days: a partition per trading date, today's included once the day has begun.
TRADING_DATES = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 * * 1-5",
    start=settings.PREDICTIONS_START,
    fmt="%Y-%m-%d",
    timezone=settings.SCHEDULE_TIMEZONE,
    end_offset=1,
)
SHADOW_TAG = "shadow_record"  # on a challenger: its paired live record (live_performance)
DECAY_ALERTED_TAG = "mlplatform.decay_alerted"  # registered model: the alarm already notified


def serving_moment(date: pd.Timestamp, latest: pd.Timestamp, now: datetime) -> datetime:
    """When the versions that score `date` are read: now for the latest bar (its scores are
    what the serving versions act on at the next open), else the date's close (the end of the
    day, UTC): a backfill never borrows a version from after the date it scores."""
    if date >= latest:
        return now
    return min(datetime.combine(date.date(), datetime.min.time(), UTC) + timedelta(days=1), now)


def _serving_model(
    client: MlflowClient, stores: PlatformStores, mv: ModelVersion, role: str
) -> ServingModel:
    try:
        text = model_text(client, stores.tracking_uri, mv)
    except ArtifactLost as exc:
        raise dg.Failure(
            description=f"cannot score with {role} v{mv.version}: {exc}. Run `make repair` "
            "(it names what is lost and what to do)",
            allow_retries=False,
        ) from exc
    return ServingModel(
        name=mv.name,
        version=str(mv.version),
        semver=mv.tags.get(TAG_SEMVER, ""),
        role=role,
        booster=lgb.Booster(model_str=text),
        feature_schema_hash=mv.tags.get("feature_schema_hash", ""),
    )


PREDICTION_CHECKS = {
    "every_ticker_scored": "Every ticker with a feature row at the date is scored by each "
    "serving version.",
    "probabilities_in_unit_interval": "Every P(up) is finite and in [0, 1].",
    "champion_is_production": "The champion is the version models/production serves (the "
    "platform's last promotion or rollback) when the date is scored as it ends; for a backfilled "
    "date, the version the recorded moves name.",
    "export_reproduces_the_scores": "Training/serving parity: the exported model.txt of the "
    "champion, given the same feature rows, gives exactly the logged P(up).",
}


def _export_of(stores: PlatformStores, version: str) -> Path | None:
    """The export folder holding this version: models/production, else its archive copy."""
    production = stores.models_path / settings.PRODUCTION_ALIAS
    try:
        meta = json.loads((production / "metadata.json").read_text())
        if str(meta.get("model_version")) == version:
            return production
    except (OSError, ValueError):
        pass
    for folder in reversed(list_archive(stores.models_path / ARCHIVE_DIR)):
        if archive_registry_version(folder) == version:
            return folder
    return None


def _exported_production(stores: PlatformStores) -> str:
    """The version models/production serves ("none")."""
    try:
        meta = json.loads(
            (stores.models_path / settings.PRODUCTION_ALIAS / "metadata.json").read_text()
        )
    except (OSError, ValueError):
        return "none"
    return str(meta.get("model_version", "none"))


def _checks(
    frame: pd.DataFrame,
    rows: pd.DataFrame,
    champion: str | None,
    served_now: str | None,
    stores: PlatformStores,
) -> Iterator[dg.AssetCheckResult]:
    """`champion`: the version production served at the close by the recorded moves;
    `served_now`: the version models/production serves ("none"), when the date is scored as it
    ends, else None (a backfill)."""
    tickers = set(rows.index.get_level_values("ticker").astype(str))
    missing = {role: sorted(tickers - set(own["ticker"])) for role, own in frame.groupby("role")}
    yield dg.AssetCheckResult(
        check_name="every_ticker_scored",
        passed=not any(missing.values()),
        metadata={
            "tickers": len(tickers),
            "missing": json.dumps({role: names[:20] for role, names in missing.items()}),
        },
    )
    p = frame["p_up"].to_numpy(dtype=float)
    bad = int((~np.isfinite(p) | (p < 0) | (p > 1)).sum())
    yield dg.AssetCheckResult(
        check_name="probabilities_in_unit_interval", passed=bad == 0, metadata={"outside": bad}
    )
    logged = frame.loc[frame["role"] == CHAMPION, "version"]
    logged_version = "none" if logged.empty else str(logged.iloc[0])
    expected = served_now if served_now is not None else str(champion or "none")
    yield dg.AssetCheckResult(
        check_name="champion_is_production",
        passed=logged_version == expected,
        description=None
        if served_now is not None
        else "a backfilled date: production then, by the recorded moves",
        metadata={"logged": str(logged_version), "production_alias": str(expected)},
    )
    if champion is None:
        yield dg.AssetCheckResult(
            check_name="export_reproduces_the_scores",
            passed=True,
            description="no model in production at that date: nothing to reproduce",
        )
        return
    folder = _export_of(stores, champion)
    if folder is None:
        yield dg.AssetCheckResult(
            check_name="export_reproduces_the_scores",
            passed=False,
            description=f"no export of v{champion} in {stores.models_path}: run `make repair`",
        )
        return
    # What a consumer of models/ computes from the same feature rows (score keeps their order).
    served = predict_up_proba(load_export_booster(folder), rows)
    logged_p = frame.loc[frame["role"] == CHAMPION, "p_up"].to_numpy(dtype=float)
    mismatches = int((served != logged_p).sum()) if len(served) == len(logged_p) else len(served)
    yield dg.AssetCheckResult(
        check_name="export_reproduces_the_scores",
        passed=mismatches == 0,
        metadata={"export": dg.MetadataValue.path(str(folder)), "mismatches": mismatches},
    )


@dg.asset(
    group_name="serving",
    **ownership("daily"),
    partitions_def=TRADING_DATES,
    io_manager_key="prediction_log",
    kinds={"lightgbm", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(name, asset="predictions", description=description, blocking=True)
        for name, description in PREDICTION_CHECKS.items()
    ],
    description="P(up) of every ticker with a feature row at the date's close, from the version "
    "in production at that close (champion) and, while a staging version waits for review, "
    "from that one too (challenger, in shadow). A backfilled date never uses a version "
    "registered after its close. Stored in the prediction log (Parquet per date).",
)
def predictions(
    context: dg.AssetExecutionContext, features: pd.DataFrame, stores: PlatformStores
) -> Iterator:
    key = context.partition_key
    date = pd.Timestamp(key)
    try:
        rows = features_of_date(features, date)
    except ScoringError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    now = datetime.now(UTC)
    client = stores.client
    moment = serving_moment(date, features.index.get_level_values("date").max(), now)
    champion, challenger = serving_at(client, stores.model_name, moment)
    served_now = _exported_production(stores) if moment == now else None
    models = [
        _serving_model(client, stores, mv, role)
        for mv, role in ((champion, CHAMPION), (challenger, CHALLENGER))
        if mv is not None
    ]
    frame = score(rows, models, now)
    served = ", ".join(f"{m.role} v{m.version}" for m in models) or "no model in production"
    context.log.info(f"{key}: {len(rows)} tickers scored by {served}")
    yield dg.Output(
        frame,
        metadata={
            "served_by": served,
            "champion_version": "none" if champion is None else str(champion.version),
            "challenger_version": "none" if challenger is None else str(challenger.version),
            "tickers": len(rows),
            "dagster/row_count": len(frame),
            "up_share": rounded(float((frame["p_up"] > 0.5).mean())) if len(frame) else 0.0,
            "log": dg.MetadataValue.path(str(PredictionLog(stores.predictions_dir).path(key))),
        },
    )
    champion_version = None if champion is None else str(champion.version)
    yield from _checks(frame, rows, champion_version, served_now, stores)


def expectations(client: MlflowClient, name: str, versions: set[str]) -> dict[str, Expectation]:
    out = {}
    for version in versions:
        raw = client.get_model_version(name, version).tags.get(EXPECTATION_TAG)
        if raw:
            out[version] = Expectation.from_dict(json.loads(raw))
    return out


def _live_metadata(live: LivePerformance) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "last_scored_date": live.last_scored or "none",
        "last_judged_date": live.last_judged or "none",
        "records": table_metadata(live.table()),
    }
    champion = live.champion()
    if champion is not None:
        recent = champion.records["last_20_days"]
        metadata.update(
            rounded_metadata(
                {
                    "champion_accuracy_20d": recent["accuracy"],
                    "champion_accuracy_20d_low": recent["accuracy_low"],
                    "champion_accuracy_20d_high": recent["accuracy_high"],
                    "champion_expected_accuracy": champion.expectation.accuracy
                    if champion.expectation
                    else float("nan"),
                    "champion_decay_statistic": champion.decay_statistic,
                }
            )
        )
        metadata["champion_version"] = champion.version
        metadata["decay_threshold"] = dg.MetadataValue.text(f"{champion.decay_threshold:.3g}")
    if live.paired:
        metadata["shadow"] = table_metadata(pd.DataFrame([vars(p) for p in live.paired]))
    return {k: v for k, v in metadata.items() if not (isinstance(v, float) and np.isnan(v))}


@dg.asset(
    group_name="serving",
    **ownership("daily"),
    deps=["predictions"],
    kinds={"pandas"},
    description="How each served version does once the next bar exists: accuracy (Wilson "
    "interval), log loss, AUC, long/short Sharpe after costs over the last 20 and 60 scored "
    "days and since it started serving, beside its walk-forward expectation; the challenger's "
    "paired record against the champion on the same rows.",
)
def live_performance(
    context: dg.AssetExecutionContext,
    raw_prices: pd.DataFrame,
    stores: PlatformStores,
    policy: dg.ResourceParam[PromotionPolicy],
) -> dg.Output[LivePerformance]:
    log = PredictionLog(stores.predictions_dir)
    dates = log.dates()
    frames = [log.read(date) for date in dates]
    logged = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["date", "ticker", "p_up", "version", "role"])
    )
    client = stores.client
    known = expectations(client, stores.model_name, set(logged["version"].astype(str)))
    live = measure(logged, outcomes(raw_prices, horizon=1), known, cost_bps=policy.min_cost_bps)
    for paired in live.paired:  # the shadow's record where promotion reads it
        client.set_model_version_tag(
            stores.model_name, paired.challenger, SHADOW_TAG, json.dumps(vars(paired))
        )
    context.log.info(f"{len(dates)} scored dates in the log, last judged {live.last_judged}")
    return dg.Output(live, metadata=_live_metadata(live))


@dg.asset_check(
    asset=live_performance,
    description="The champion's live accuracy is not significantly below its walk-forward "
    "expectation (a CUSUM whose false alarms stay under 5 % over a year of daily looks); a "
    "failure is notified once and the decay sensor requests a retrain.",
)
def performance_decay(
    live_performance: LivePerformance, stores: PlatformStores, notifier: Notifier
) -> dg.AssetCheckResult:
    champion = live_performance.champion()
    if champion is None or champion.expectation is None:
        return dg.AssetCheckResult(
            passed=True,
            description="no champion with a walk-forward expectation has a live record yet",
        )
    metadata = {
        "champion_version": champion.version,
        "statistic": rounded(champion.decay_statistic),
        "threshold": rounded(champion.decay_threshold),
        "live_accuracy": rounded(champion.records["since_promotion"]["accuracy"]),
        "expected_accuracy": rounded(champion.expectation.accuracy),
        "days": champion.records["since_promotion"]["days"],
    }
    if not champion.decayed:
        return dg.AssetCheckResult(
            passed=True,
            description=f"v{champion.version} keeps its edge so far",
            metadata={**metadata, "alarm_date": "none"},
        )
    evidence = f"v{champion.version}:{champion.decay_alarm_date}"
    client = stores.client
    if registry_tag(client, stores.model_name, DECAY_ALERTED_TAG) != evidence:
        client.set_registered_model_tag(stores.model_name, DECAY_ALERTED_TAG, evidence)
        notifier.send(
            Notification(
                NotificationKind.PERFORMANCE_DECAY,
                f"{stores.model_name} v{champion.version} lost its edge in live trading "
                f"(since {champion.decay_alarm_date})",
                fields={k: v for k, v in metadata.items()},
            )
        )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"v{champion.version}'s live accuracy fell significantly below its "
        f"walk-forward expectation (alarm on {champion.decay_alarm_date}): retrain",
        metadata={**metadata, "alarm_date": str(champion.decay_alarm_date)},
    )
