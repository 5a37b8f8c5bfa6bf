"""Schedules ship STOPPED, as Dagster's do: a person switches them on in the UI (Automation)."""

from __future__ import annotations

import dagster as dg

from mlplatform import config as settings
from mlplatform.orchestration.jobs import data_refresh_job, prune_job, retrain_job

weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule",
    job=retrain_job,
    cron_schedule=settings.WEEKLY_RETRAIN_CRON,
    execution_timezone=settings.SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Sunday at 02:00 UTC: tune, train and backtest a new staging model on "
    "the latest bars. It never promotes: a person reviews the checks and promotes.",
    tags={"mlplatform/trigger": "weekly_schedule"},
)


@dg.schedule(
    name="daily_refresh_schedule",
    job=data_refresh_job,
    cron_schedule=settings.DAILY_REFRESH_CRON,
    execution_timezone=settings.SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="After each weekday's close: pull the day's bars, score the day, judge the "
    "days whose outcomes are now known, report drift.",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = context.scheduled_execution_time.date().isoformat()
    return dg.RunRequest(
        run_key=day, partition_key=day, tags={"mlplatform/trigger": "daily_schedule"}
    )


weekly_prune_schedule = dg.ScheduleDefinition(
    name="weekly_prune_schedule",
    job=prune_job,
    cron_schedule=settings.WEEKLY_PRUNE_CRON,
    execution_timezone=settings.SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Sunday at 05:00 UTC, after the retrain: remove the registry versions the "
    "retention policy lets go, with their MLflow runs, studies and reports. Production, the "
    "previous production, staging and archived versions always stay.",
    tags={"mlplatform/trigger": "weekly_schedule"},
)
