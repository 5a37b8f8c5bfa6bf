"""Which channels a notification goes to. No Dagster here: the Notifier resource only calls this."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mlplatform.notifications.channels import (
    Notification,
    format_text,
    post_slack,
    post_webhook,
    redact,
    url_secrets,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Targets:
    """Where notifications go: the deployment's settings. The secrets stay out of the repr."""

    webhook_url: str | None = field(repr=False)
    slack_token: str | None = field(repr=False)
    slack_channel: str
    slack_api_url: str


def _secrets(targets: Targets) -> list[str | None]:
    return [*url_secrets(targets.webhook_url or ""), targets.slack_token]


def deliver(notification: Notification, targets: Targets) -> list[str]:
    """Send to the log and every configured channel; returns the channels that delivered.

    A failing channel is a warning, never an exception: a notification must never fail the
    promotion, rollback or sensor that sends it.
    """
    delivered = ["log"]
    logger.info("notification %s: %s", notification.kind, format_text(notification))
    if targets.webhook_url:
        try:
            post_webhook(targets.webhook_url, notification)
            delivered.append("webhook")
        except Exception as exc:  # NotificationError, or a bug: neither may stop the sender
            logger.warning(redact(f"webhook notification failed: {exc}", _secrets(targets)))
    if targets.slack_token:
        try:
            post_slack(
                targets.slack_token,
                targets.slack_channel,
                notification,
                api_url=targets.slack_api_url,
            )
            delivered.append("slack")
        except Exception as exc:
            logger.warning(redact(f"slack notification failed: {exc}", _secrets(targets)))
    return delivered
