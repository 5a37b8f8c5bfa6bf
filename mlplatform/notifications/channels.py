"""Delivery channels for platform events. No Dagster here: the resource in orchestration wires it.

Secrets (a webhook URL carries its token in the path, a Slack token) are never logged: every
error message goes through `redact` first.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class NotificationKind(StrEnum):
    READY_FOR_REVIEW = "ready_for_review"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    RUN_FAILED = "run_failed"
    ALIAS_MOVED_OUTSIDE = "alias_moved_outside"


@dataclass(frozen=True)
class Notification:
    kind: NotificationKind
    title: str
    fields: dict[str, Any] = field(default_factory=dict)
    link: str | None = None
    sent_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_payload(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["kind"] = str(self.kind)
        payload["source"] = "mlplatform"
        return payload


def format_text(notification: Notification) -> str:
    """One readable message for Slack and logs."""
    lines = [f"*[mlplatform] {notification.title}*"]
    lines += [f"• {key}: {value}" for key, value in notification.fields.items()]
    if notification.link:
        lines.append(notification.link)
    return "\n".join(lines)


def redact(text: str, secrets: list[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def post_webhook(url: str, notification: Notification, *, timeout_s: float = 5.0) -> int:
    """POST the notification as JSON; returns the HTTP status. Raises RuntimeError, redacted."""
    body = json.dumps(notification.to_payload(), default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise RuntimeError(redact(f"webhook delivery failed: {exc}", [url])) from None


def post_slack(client: Any, channel: str, notification: Notification) -> None:
    """Post through a slack_sdk WebClient (what dagster-slack's SlackResource hands out)."""
    client.chat_postMessage(channel=channel, text=format_text(notification))
