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

__all__ = [
    "Notification",
    "NotificationError",
    "NotificationKind",
    "Targets",
    "deliver",
    "format_text",
    "post_slack",
    "post_webhook",
    "redact",
]
