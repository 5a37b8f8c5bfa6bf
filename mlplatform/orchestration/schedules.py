"""Schedules ship STOPPED, as Dagster's do: a person switches them on in the UI (Automation)."""

from __future__ import annotations

import dagster as dg

from mlplatform import config as settings
from mlplatform.orchestration.jobs import data_refresh_job, retrain_job

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

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=data_refresh_job,
    cron_schedule=settings.DAILY_REFRESH_CRON,
    execution_timezone=settings.SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Pull the day's bars after the close and report drift.",
    tags={"mlplatform/trigger": "daily_schedule"},
)
