"""Notifications: a log line always, a JSON webhook and Slack when configured."""

from mlplatform.notifications.channels import (
    Notification,
    NotificationError,
    NotificationKind,
    format_text,
    post_slack,
    post_webhook,
    redact,
)
from mlplatform.notifications.delivery import Targets, deliver
from mlplatform.notifications.events import drift_detected, retrain_finished

__all__ = [
    "Notification",
    "NotificationError",
    "NotificationKind",
    "Targets",
    "deliver",
    "drift_detected",
    "format_text",
    "post_slack",
    "post_webhook",
    "redact",
    "retrain_finished",
]
