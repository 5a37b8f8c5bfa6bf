"""Delivery channels for platform events. No Dagster here: `deliver` decides, the resource calls.

Secrets (a webhook URL carries its token in the path, a Slack token) are never logged: every
error message is built from the parts that are not secret, and what a library says goes through
`redact` first. Every failure of a channel is a `NotificationError`.
"""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import requote_uri
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from mlplatform import config

# One attempt per channel, bounded: a notification is sent while a promotion or a sensor waits.
DELIVERY_TIMEOUT_S = 5.0


class NotificationKind(StrEnum):
    READY_FOR_REVIEW = "ready_for_review"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    RUN_FAILED = "run_failed"
    ALIAS_MOVED_OUTSIDE = "alias_moved_outside"
    RETRAIN_FINISHED = "retrain_finished"
    DRIFT_DETECTED = "drift_detected"
    PERFORMANCE_DECAY = "performance_decay"


class NotificationError(RuntimeError):
    """A channel did not deliver; the message never carries the channel's secret."""


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


def redact(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """The URL and the parts a library may quote alone (path, query, user info), longest first.

    urllib3 names only the path of a failed request ("Max retries exceeded with url: /hook/…"),
    so redacting the whole URL is not enough.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL (e.g. "http://[::1"): nothing to split, the whole is secret
        return [url]
    pieces = [url, parts.path if len(parts.path) > 1 else "", parts.query]
    pieces += [parts.password or "", parts.username or ""]
    quoted = [requote_uri(piece) for piece in pieces]
    return sorted({piece for piece in pieces + quoted if piece}, key=len, reverse=True)


def _origin(url: str) -> str:
    """Where a request goes, without the path, query or user info that may carry a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _require_http(url: str, channel: str) -> None:
    """Refuse before any request: other schemes would read files (file:, data:) or reach
    services (ftp:) that a notification has no business with."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise NotificationError(f"{channel} URL refused: not a URL") from None
    if scheme not in ("http", "https"):
        raise NotificationError(f"{channel} URL refused: scheme {scheme!r} is not http or https")


def post_webhook(
    url: str, notification: Notification, *, timeout_s: float = DELIVERY_TIMEOUT_S
) -> int:
    """POST the notification as JSON; returns the 2xx status. Raises NotificationError, redacted.

    Redirects are not followed: the URL names the receiver, a 3xx would send the payload wherever
    the answer says.
    """
    _require_http(url, "webhook")
    secrets = url_secrets(url)
    body = json.dumps(notification.to_payload(), default=str).encode()
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=timeout_s,
            allow_redirects=False,
        )
    except (requests.RequestException, ValueError) as exc:  # ValueError: a malformed URL
        reason = redact(f"{type(exc).__name__}: {exc}", secrets)
        raise NotificationError(f"webhook delivery to {_origin(url)} failed: {reason}") from None
    if not 200 <= response.status_code < 300:
        reason = redact(f"HTTP {response.status_code} {response.reason or ''}".strip(), secrets)
        hint = " (redirects are not followed)" if response.is_redirect else ""
        raise NotificationError(f"webhook delivery to {_origin(url)} failed: {reason}{hint}")
    return response.status_code


def post_slack(
    token: str,
    channel: str,
    notification: Notification,
    *,
    api_url: str = config.SLACK_API_URL_DEFAULT,
    timeout_s: float = DELIVERY_TIMEOUT_S,
) -> None:
    """chat.postMessage at `api_url` (Slack's, GovSlack's, an egress proxy's). Raises
    NotificationError, redacted.

    slack_sdk's WebClient is built here rather than by dagster-slack's SlackResource, which is the
    same client without a base URL or a timeout (and would bring Dagster into this package). It
    follows a redirect (urllib), so `api_url` is trusted as the token is: a deployment setting.
    """
    _require_http(api_url, "slack API")
    client = WebClient(
        token=token, base_url=api_url, timeout=math.ceil(timeout_s), retry_handlers=[]
    )
    try:
        client.chat_postMessage(channel=channel, text=format_text(notification))
    except SlackApiError as exc:  # Slack answered, and said no
        error = exc.response.get("error") or f"HTTP {exc.response.status_code}"
        reason = redact(str(error), [token])
        raise NotificationError(f"slack delivery to {channel} failed: {reason}") from None
    except (SlackClientError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = redact(f"{type(exc).__name__}: {exc}", [token])
        raise NotificationError(f"slack delivery via {_origin(api_url)} failed: {reason}") from None
