"""The notification channels against real HTTP servers on 127.0.0.1: a webhook receiver and a
stand-in for Slack's chat.postMessage. The client code (requests, slack_sdk) is the real one."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from mlplatform import config
from mlplatform.definitions import build_resources
from mlplatform.notifications import (
    Notification,
    NotificationError,
    NotificationKind,
    Targets,
    deliver,
    format_text,
    post_slack,
    post_webhook,
)
from mlplatform.notifications.channels import DELIVERY_TIMEOUT_S
from mlplatform_tests.conftest import WebhookReceiver

SECRET = "secret-token"
TOKEN = "xoxb-test-token-1234"
NOTIFICATION = Notification(
    NotificationKind.PROMOTED, "v3 promoted", fields={"version": 3}, link="http://ui/x"
)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    """What a local server was sent, and what it answers (status, headers, JSON body)."""

    origin: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    answer: dict | None = None


@pytest.fixture
def serve() -> Iterator[Callable[[], FakeServer]]:
    """Starts HTTP servers on 127.0.0.1 that record every request and answer as told."""
    servers: list[HTTPServer] = []

    def start() -> FakeServer:
        fake = FakeServer()

        class Handler(BaseHTTPRequestHandler):
            def _record_and_answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake.received.append(
                    Received(self.command, self.path, dict(self.headers), self.rfile.read(length))
                )
                body = json.dumps(fake.answer).encode() if fake.answer is not None else b""
                self.send_response(fake.status)
                for name, value in fake.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _record_and_answer

            def log_message(self, *args: object) -> None:
                return None

        server = HTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        fake.origin = f"http://127.0.0.1:{server.server_port}"
        return fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def slack_api(serve: Callable[[], FakeServer]) -> FakeServer:
    """Slack's Web API as far as chat.postMessage goes: it answers ok unless told otherwise."""
    fake = serve()
    fake.answer = {"ok": True, "channel": "C123", "ts": "1700000000.000100"}
    return fake


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield listener
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port(listener: socket.socket) -> int:
    return listener.getsockname()[1]


def nobody_connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def failure(send: Callable[[], object], *secrets: str) -> str:
    """The NotificationError's message, checked to name none of the secrets."""
    with pytest.raises(NotificationError) as raised:
        send()
    message = str(raised.value)
    for secret in secrets:
        assert secret not in message
    return message


# --- webhook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_webhook_posts_the_payload_as_json(
    webhook: WebhookReceiver, kind: NotificationKind
) -> None:
    notification = Notification(kind, "title", fields={"at": Path("/x")})  # default=str
    assert post_webhook(webhook.url, notification) == 204
    assert webhook.received == [{**notification.to_payload(), "fields": {"at": "/x"}}]
    assert webhook.received[0]["kind"] == kind.value


def test_webhook_redirect_to_another_host_is_not_followed(serve: Callable[[], FakeServer]) -> None:
    elsewhere = serve()
    receiver = serve()
    receiver.status = 302
    receiver.headers = {"Location": f"{elsewhere.origin}/collect/{SECRET}"}
    url = f"{receiver.origin}/hook/{SECRET}"
    message = failure(lambda: post_webhook(url, NOTIFICATION), SECRET, url)
    assert "HTTP 302" in message and "redirects are not followed" in message
    assert len(receiver.received) == 1 and elsewhere.received == []


@pytest.mark.parametrize("status", [301, 307, 400, 404, 500, 503])
def test_webhook_status_outside_2xx_is_a_failure_naming_it(
    serve: Callable[[], FakeServer], status: int
) -> None:
    receiver = serve()
    receiver.status = status
    receiver.headers = {"Location": f"{receiver.origin}/other/{SECRET}"}
    url = f"{receiver.origin}/hook/{SECRET}"
    message = failure(lambda: post_webhook(url, NOTIFICATION), SECRET, url)
    assert f"HTTP {status}" in message and receiver.origin in message
    assert [r.path for r in receiver.received] == [f"/hook/{SECRET}"]


def test_webhook_refuses_schemes_other_than_http_before_any_request(
    tmp_path: Path, silent: socket.socket
) -> None:
    private = tmp_path / SECRET
    private.write_text("private contents")
    urls = {
        "file": private.as_uri(),
        "data": f"data:application/json,{SECRET}",
        "ftp": f"ftp://127.0.0.1:{port(silent)}/{SECRET}",
        "": f"127.0.0.1:{port(silent)}/{SECRET}",
    }
    for scheme, url in urls.items():
        message = failure(lambda u=url: post_webhook(u, NOTIFICATION), SECRET, "private contents")
        assert f"scheme {scheme!r} is not http or https" in message
    assert nobody_connected(silent)


def test_webhook_that_never_answers_fails_within_the_timeout(silent: socket.socket) -> None:
    url = f"http://127.0.0.1:{port(silent)}/hook/{SECRET}"
    started = time.monotonic()
    message = failure(lambda: post_webhook(url, NOTIFICATION), SECRET, url)
    assert time.monotonic() - started < DELIVERY_TIMEOUT_S + 2
    assert "ReadTimeout" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{closed}/hook/{secret}",
        "http://user:{secret}@127.0.0.1:{closed}/hook?key={secret}",
        "http://127.0.0.1:99999/hook/{secret}",
        "http://[::1/hook/{secret}",
        "http:///hook/{secret}",
        "http://exa mple.com/hook/{secret}",
        "http://127.0.0.1:{closed}/hook/{secret} with space/é",
    ],
)
def test_webhook_failures_never_show_the_secret(closed_port: int, url: str) -> None:
    url = url.format(closed=closed_port, secret=SECRET)
    failure(lambda: post_webhook(url, NOTIFICATION, timeout_s=1), SECRET, url)


# --- Slack -----------------------------------------------------------------------------------


def test_slack_message_is_posted_with_the_token_as_bearer(slack_api: FakeServer) -> None:
    post_slack(TOKEN, "#models", NOTIFICATION, api_url=f"{slack_api.origin}/api/")
    [request] = slack_api.received
    assert request.method == "POST" and request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.body) == {"channel": "#models", "text": format_text(NOTIFICATION)}


def test_slack_refusal_names_slack_error_without_the_token(slack_api: FakeServer) -> None:
    slack_api.answer = {"ok": False, "error": "channel_not_found"}
    api_url = f"{slack_api.origin}/api/"
    message = failure(lambda: post_slack(TOKEN, "#gone", NOTIFICATION, api_url=api_url), TOKEN)
    assert message == "slack delivery to #gone failed: channel_not_found"
    slack_api.answer = {"ok": False, "error": f"invalid_auth: {TOKEN}"}  # a server that echoes
    message = failure(lambda: post_slack(TOKEN, "#gone", NOTIFICATION, api_url=api_url), TOKEN)
    assert message == "slack delivery to #gone failed: invalid_auth: ***"


def test_slack_http_error_is_a_notification_error(slack_api: FakeServer) -> None:
    slack_api.status = 503
    slack_api.answer = None
    api_url = f"{slack_api.origin}/api/"
    message = failure(lambda: post_slack(TOKEN, "#models", NOTIFICATION, api_url=api_url), TOKEN)
    assert "slack delivery to #models failed" in message


def test_slack_unreachable_fails_at_once(closed_port: int) -> None:
    api_url = f"http://127.0.0.1:{closed_port}/api/"
    started = time.monotonic()
    message = failure(lambda: post_slack(TOKEN, "#models", NOTIFICATION, api_url=api_url), TOKEN)
    assert time.monotonic() - started < 2  # one attempt: slack_sdk's retry is off
    assert "Connection refused" in message


def test_slack_that_never_answers_fails_within_the_timeout(silent: socket.socket) -> None:
    api_url = f"http://127.0.0.1:{port(silent)}/api/"
    started = time.monotonic()
    message = failure(lambda: post_slack(TOKEN, "#models", NOTIFICATION, api_url=api_url), TOKEN)
    assert time.monotonic() - started < DELIVERY_TIMEOUT_S + 2
    assert "timed out" in message


def test_slack_api_url_must_be_http(tmp_path: Path) -> None:
    message = failure(lambda: post_slack(TOKEN, "#m", NOTIFICATION, api_url=tmp_path.as_uri()))
    assert message == "slack API URL refused: scheme 'file' is not http or https"


# --- deliver and the Notifier resource -------------------------------------------------------


def test_deliver_sends_to_every_configured_channel(
    webhook: WebhookReceiver, slack_api: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    targets = Targets(webhook.url, TOKEN, "#models", f"{slack_api.origin}/api/")
    assert deliver(NOTIFICATION, targets) == ["log", "webhook", "slack"]
    assert len(webhook.received) == 1 and len(slack_api.received) == 1
    assert "v3 promoted" in caplog.text
    assert deliver(NOTIFICATION, Targets(None, None, "#models", slack_api.origin)) == ["log"]


def test_deliver_logs_a_failing_channel_and_never_raises(
    closed_port: int, slack_api: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack_api.answer = {"ok": False, "error": "not_in_channel"}
    webhook_url = f"http://127.0.0.1:{closed_port}/hook/{SECRET}"
    targets = Targets(webhook_url, TOKEN, "#models", f"{slack_api.origin}/api/")
    assert deliver(NOTIFICATION, targets) == ["log"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("webhook notification failed: ") for m in warnings)
    assert "slack notification failed: slack delivery to #models failed: not_in_channel" in warnings
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert SECRET not in repr(targets) and TOKEN not in repr(targets)


def test_notifier_reads_the_slack_api_url_from_the_environment(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch, slack_api: FakeServer
) -> None:
    assert build_resources()["notifier"].slack_api_url == config.SLACK_API_URL_DEFAULT
    monkeypatch.setenv(config.SLACK_TOKEN_ENV, TOKEN)
    monkeypatch.setenv(config.SLACK_API_URL_ENV, f"{slack_api.origin}/api/")
    with dg.build_resources({"notifier": build_resources()["notifier"]}) as resources:
        assert resources.notifier.send(NOTIFICATION) == ["log", "slack"]
    assert slack_api.received[0].headers["Authorization"] == f"Bearer {TOKEN}"


# --- events -----------------------------------------------------------------------------------


def test_retrain_finished_names_each_failing_criterion_with_its_figure() -> None:
    from mlplatform.notifications import retrain_finished
    from mlplatform.promotion import PromotionPolicy, evaluate_criteria

    metrics = {
        "staging": {
            "accuracy": 0.505,
            "window_majority_rate": 0.51,
            "p_value_vs_majority": 0.7,
            "p_value_by_date": 0.8,
            "log_loss": 0.6931,
            "long_short_sharpe": 0.2,
            "long_short_dsr": 0.1,
            "up_share": 0.5,
            "down_share": 0.5,
        }
    }
    outcome = evaluate_criteria(metrics, PromotionPolicy(), cost_bps=5.0)
    notification = retrain_finished(
        outcome, version="7", semver="1.2.0", trigger="weekly_schedule", figures={}, link=None
    )
    assert notification.kind is NotificationKind.RETRAIN_FINISHED
    assert notification.title == "retrain finished: staging v7 failed 2 of 5 promotion criteria"
    fields = notification.fields
    assert fields["verdict"] == "failed: beats_majority_class, sharpe_after_costs_and_dsr"
    # the gate's own words, with the figure and the threshold
    assert fields["beats_majority_class"].startswith("FAILED — p = 0.7 by row, 0.8 by date")
    assert "Sharpe after costs 0.200 (needs > " in fields["sharpe_after_costs_and_dsr"]
    assert "OVERRIDE=1" in fields["next_step"]
    assert "log_loss_not_worse_than_production" not in fields  # only what failed
    text = format_text(notification)
    assert "• beats_majority_class: FAILED — p = 0.7" in text


def test_drift_detected_names_the_drifted_features_and_the_run() -> None:
    import pandas as pd

    from mlplatform.notifications import drift_detected

    psi = pd.Series({"ret_1": 0.05, "vol_20": 0.41, "rsi_14": 0.27})
    notification = drift_detected(
        psi, threshold=0.2, window_end="2026-04-17", reference="production v3", requested="run X"
    )
    assert notification.title.startswith("drift detected: 2 of 3 features at PSI ≥ 0.2")
    assert list(k for k in notification.fields if k.startswith("psi_")) == [
        "psi_vol_20",
        "psi_rsi_14",
    ]
    assert notification.fields["requested"] == "run X"
