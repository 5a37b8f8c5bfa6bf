"""Notifications: a log line always, a JSON webhook and Slack when configured."""

from mlplatform.notifications.channels import (
    Notification,
    NotificationKind,
    format_text,
    post_slack,
    post_webhook,
    redact,
)

__all__ = [
    "Notification",
    "NotificationKind",
    "format_text",
    "post_slack",
    "post_webhook",
    "redact",
]
