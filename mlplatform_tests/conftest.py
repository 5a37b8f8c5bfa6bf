"""Shared fixtures: every test gets its own home folder and model export, never the project's."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mlplatform import config
from mlplatform.orchestration.jobs import DATA_ASSETS, RETRAINED_ASSETS


@pytest.fixture
def platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated MLPLATFORM_HOME and models/ export for one test."""
    home = tmp_path / "home"
    models = tmp_path / "models"
    monkeypatch.setenv(config.HOME_ENV, str(home))
    monkeypatch.setenv(config.MODELS_DIR_ENV, str(models))
    monkeypatch.delenv(config.DATA_PATH_ENV, raising=False)
    monkeypatch.delenv(config.WEBHOOK_URL_ENV, raising=False)
    monkeypatch.delenv(config.SLACK_TOKEN_ENV, raising=False)
    monkeypatch.delenv(config.SLACK_API_URL_ENV, raising=False)
    monkeypatch.delenv(config.MLFLOW_TRACKING_URI_ENV, raising=False)
    monkeypatch.delenv(config.OPTUNA_STORAGE_ENV, raising=False)
    monkeypatch.delenv(config.REGISTRY_LOCK_URL_ENV, raising=False)
    monkeypatch.delenv(config.IO_DIR_ENV, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # prepare_home's value is undone after
    yield home


# A market small enough for a whole pipeline run in well under a minute on two cores.
SMALL_MARKET = {"seed": 7, "n_tickers": 6, "years": 3, "as_of": "2026-06-30"}
SMALL_VALIDATION = {
    "n_folds": 2,
    "min_train_days": 120,
    "embargo_days": 2,
    "evaluation_months": 12,
    "refit_months": 6,
}
SMALL_TUNING = {"n_trials": 6, "timeout_s": 300.0}
# Every asset a retrain materializes, raw_prices first: what a test materializes to train.
RETRAIN_ASSETS = (*DATA_ASSETS, *RETRAINED_ASSETS)


def materialize(
    defs: object, instance: object, *keys: str, run_config: dict | None = None
) -> object:
    """The assets `keys`, in process, through the same helper the CLI uses."""
    import dagster as dg

    from mlplatform.cli import execute

    return execute(
        defs,  # type: ignore[arg-type]
        instance,  # type: ignore[arg-type]
        trigger="test",
        assets=[dg.AssetKey(key) for key in keys],
        run_config=run_config,
    )


def drift_sensor_tick(defs: object, instance: object, cursor: str | None) -> object:
    """One evaluation of drift_sensor with the code location's resources, as the daemon runs it."""
    import dagster as dg

    context = dg.build_sensor_context(
        instance=instance,  # type: ignore[arg-type]
        definitions=defs,  # type: ignore[arg-type]
        cursor=cursor,
        resources={key: defs.resources[key] for key in ("stores", "notifier")},  # type: ignore[attr-defined]
    )
    return defs.resolve_sensor_def("drift_sensor").evaluate_tick(context)  # type: ignore[attr-defined]


def failure_message(result: object) -> str:
    """Every step failure's message in one string."""
    return "\n".join(
        event.step_failure_data.error.message
        for event in result.all_events  # type: ignore[attr-defined]
        if event.is_step_failure
    )


def deployed_stores() -> object:
    """The stores the code location uses in this test's environment (its home folder)."""
    from mlplatform.definitions import build_resources

    return build_resources()["stores"]


def lenient_policy(**criteria: float) -> object:
    """Promotion criteria every candidate passes (unless `criteria` tighten one): lets a test
    reach promotion deterministically on a market too small for the real criteria's power."""
    from mlplatform.promotion import PromotionPolicy

    lenient = {
        "max_p_value": 1.0,
        "min_sharpe": -1e9,
        "min_dsr": 0.0,
        "min_class_share": 0.0,
        "min_accuracy_delta": -1.0,
        "max_log_loss_increase": 1.0,
    }
    return PromotionPolicy(**{**lenient, **criteria})


def small_run_config(**tuning: object) -> dict:
    return {"ops": {"tuned_params": {"config": {**SMALL_TUNING, **tuning}}}}


def small_overrides(policy: object | None = None, **market: object) -> dict[str, object]:
    """A small market and few folds; `policy` replaces the default promotion criteria."""
    from mlplatform.orchestration.resources import MarketDataSource, ValidationScheme

    overrides: dict[str, object] = {
        "market_data": MarketDataSource(**{**SMALL_MARKET, **market}),
        "validation": ValidationScheme(**SMALL_VALIDATION),
    }
    if policy is not None:
        overrides["policy"] = policy
    return overrides


@dataclass
class WebhookReceiver:
    url: str
    received: list[dict] = field(default_factory=list)


@contextlib.contextmanager
def webhook_server() -> Iterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it, until the
    block ends (the `webhook` fixture; a module-scoped server for a long-lived `dagster dev`)."""
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            receiver.received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook/secret-token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""
    with webhook_server() as receiver:
        yield receiver
