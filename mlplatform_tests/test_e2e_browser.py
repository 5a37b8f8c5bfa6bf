"""The Dagster UI as a user drives it: headless Chromium (Playwright) against a real `dagster dev`.

One `dagster dev` serves a temporary home folder that a small in-process run filled, on a small
market with a strong planted signal where the real promotion criteria have the power to pass:
staging v1 passed every check and was promoted plainly, staging v2 was then evaluated under a
stricter policy and failed one. The tests then work through the UI in file order, as a person
would: browse the lineage, read the checks, see the refusal, promote (after v2's checks are
evaluated again under the default criteria), roll back and switch the drift sensor on; each
builds on the state the previous one left. Every step is screenshotted under
.mlplatform-test-artifacts/browser/<test>/; the folder is kept, and its path printed, when the
test fails. Chromium is Debian's (/usr/bin/chromium, installed by .ci/run): Playwright drives it
through the driver its wheel ships, nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from mlplatform import config
from mlplatform.cli import prepare_home
from mlplatform.data import generate_market
from mlplatform.definitions import build_definitions
from mlplatform.orchestration.resources import MarketDataSource
from mlplatform.promotion import PromotionPolicy
from mlplatform.registry import get_alias_version
from mlplatform_tests.conftest import (
    RETRAIN_ASSETS,
    failure_message,
    materialize,
    small_run_config,
)
from mlplatform_tests.dagster_dev_support import (
    LOCATION,
    dagster_dev,
    dev_log,
    graphql,
    wait_for_location,
)

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium waits on services the closed network drops.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = config.PROJECT_ROOT / ".mlplatform-test-artifacts" / "browser"
UI_TIMEOUT_MS = 30_000  # two busy cores: pages and their queries can take seconds
RUN_TIMEOUT_MS = 120_000  # a run launched from the UI starts a worker process that imports it all

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("CI") != "true",
        reason=f"{CHROMIUM} is missing: `apt-get install chromium` (CI installs it in .ci/run)",
    ),
]


FAILING_CHECK = "accuracy_vs_production"


def failing_policy() -> PromotionPolicy:
    """Criteria no challenger of a production model meets (accuracy 100 points above it): a
    refusal, deterministically, on the one check FAILING_CHECK."""
    return PromotionPolicy(min_accuracy_delta=1.0)  # the default criteria, one made unreachable


@dataclasses.dataclass
class Platform:
    """The running UI and what the tests need to reach its home folder in process."""

    url: str
    port: int
    home: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    first_version: str
    second_version: str

    def production_version(self) -> str | None:
        version = get_alias_version(
            config.mlflow_tracking_uri(), config.MODEL_NAME, config.PRODUCTION_ALIAS
        )
        return None if version is None else str(version.version)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("browser")
    data_file = root / "prices.csv"
    market = generate_market(seed=5, n_tickers=8, years=5, as_of="2026-06-30", signal_strength=0.9)
    market.prices.to_csv(data_file, index=False)
    with pytest.MonkeyPatch.context() as patch:
        for name in (config.WEBHOOK_URL_ENV, config.SLACK_TOKEN_ENV):
            patch.delenv(name, raising=False)
        for name in (config.MLFLOW_TRACKING_URI_ENV, config.OPTUNA_STORAGE_ENV):
            patch.delenv(name, raising=False)
        patch.setenv(config.HOME_ENV, str(root / "home"))
        patch.setenv(config.MODELS_DIR_ENV, str(root / "models"))
        patch.setenv(config.DATA_PATH_ENV, str(data_file))
        dagster_home = prepare_home()
        # dagster dev boots (imports, code server) while this process fills the home folder.
        with dagster_dev(dagster_home) as (process, port):
            instance = dg.DagsterInstance.get()
            source = {"market_data": MarketDataSource(kind="file", path=str(data_file))}
            defs = build_definitions(source)
            # v1 passes every default criterion and goes to production without an override;
            # v2 is judged by a stricter policy, fails a check and waits as staging.
            trained = materialize(
                defs, instance, *RETRAIN_ASSETS, run_config=small_run_config(n_trials=2)
            )
            assert trained.success, failure_message(trained)
            promoted = materialize(defs, instance, "production_model")
            assert promoted.success, failure_message(promoted)
            strict = build_definitions({**source, "policy": failing_policy()})
            materialize(strict, instance, "staging_model", "backtest_report")
            uri = config.mlflow_tracking_uri()
            staging = get_alias_version(uri, config.MODEL_NAME, config.STAGING_ALIAS)
            production = get_alias_version(uri, config.MODEL_NAME, config.PRODUCTION_ALIAS)
            assert staging is not None and production is not None
            assert str(staging.version) != str(production.version)
            wait_for_location(port, process, time.time() + 180, dev_log(dagster_home))
            yield Platform(
                url=f"http://127.0.0.1:{port}",
                port=port,
                home=root / "home",
                defs=defs,
                instance=instance,
                first_version=str(production.version),
                second_version=str(staging.version),
            )


@pytest.fixture(scope="module")
def browser(platform: Platform) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class UI:
    """One browser page on the running UI, screenshotting each step into `folder`."""

    def __init__(self, page: Page, base_url: str, folder: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.folder = folder
        self.steps = 0
        # The first visit asks to "Join the Dagster community": skip it whenever it shows up.
        page.add_locator_handler(
            page.get_by_role("button", name="Skip", exact=True),
            lambda skip: skip.click(),
        )

    def open(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def shot(self, name: str) -> None:
        self.steps += 1
        self.page.screenshot(path=self.folder / f"{self.steps:02d}-{name}.png", full_page=True)

    def button(self, label: str) -> Locator:
        """A button by its visible words (icons add names of their own to the accessible name)."""
        return self.page.get_by_role("button").filter(has_text=re.compile(rf"^{re.escape(label)}$"))

    def launched_run(self) -> str:
        """Follow the "Launched run" toast to the run's page; return the run id."""
        toast = self.page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
        expect(toast).to_be_visible(timeout=30_000)
        self.page.get_by_role("link", name="View", exact=True).click()
        self.page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        return self.page.url.rsplit("/", 1)[-1]

    def run_outcome(self, run_id: str) -> str:
        """Wait on the run page until the run ends; its status as the page shows it."""
        status = self.page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
        expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
        return status.inner_text()


@pytest.fixture
def ui(platform: Platform, browser: Browser, request: pytest.FixtureRequest) -> Iterator[UI]:
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    failed_before = request.session.testsfailed
    print(f"screenshots of each step: {folder} (kept when the test fails)")
    ui = UI(context.new_page(), platform.url, folder)
    try:
        yield ui
    finally:
        with contextlib.suppress(Exception):
            ui.shot("last")
        context.close()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(folder, ignore_errors=True)


def metadata_value(ui: UI, key: str) -> Locator:
    """The value cell of `key` in an asset page's metadata table (latest materialization)."""
    row = ui.page.locator("tr").filter(has=ui.page.get_by_text(key, exact=True))
    return row.locator("td").last


def sensor_status(platform: Platform, name: str) -> str:
    query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
        ... on Sensor { sensorState { status } } } }"""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "sensorName": name,
    }
    data = graphql(platform.port, query, {"s": selector})
    return data["sensorOrError"]["sensorState"]["status"]


def wait_for_sensor(platform: Platform, name: str, status: str, timeout_s: float = 30) -> None:
    deadline = time.time() + timeout_s
    while sensor_status(platform, name) != status:
        assert time.time() < deadline, f"{name} did not become {status}"
        time.sleep(0.5)


def test_lineage_shows_every_asset_in_its_group(ui: UI, platform: Platform) -> None:
    graph = platform.defs.resolve_asset_graph()
    expected = {
        key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()
    }
    ui.open("/asset-groups")
    sidebar = ui.page.locator("div[class*=AssetSidebarNode_itemContainer]")
    for group in sorted(set(expected.values())):
        row = sidebar.filter(has=ui.page.get_by_title(group, exact=True))
        row.get_by_role("img", name="arrow_drop_down").click()  # expand the group
    expect(sidebar).to_have_count(len(expected) + len(set(expected.values())))
    ui.shot("lineage-expanded")
    seen: dict[str, str] = {}
    group = None
    for title in sidebar.locator("div[title]").evaluate_all("els => els.map(e => e.title)"):
        if title in expected.values():
            group = title
        else:
            seen[title] = group
    assert seen == expected


def test_backtest_report_shows_each_check_result(ui: UI, platform: Platform) -> None:
    ui.open("/assets/backtest_report?view=checks")
    checks = platform.defs.resolve_asset_graph().get(dg.AssetKey("backtest_report")).check_keys
    failed = []
    for key in sorted(checks, key=lambda k: k.name):
        record = platform.instance.get_latest_asset_check_evaluation_record(key)
        assert record is not None and record.evaluation is not None, key
        status = "Succeeded" if record.evaluation.passed else "Failed"
        item = ui.page.locator("span").filter(has=ui.page.get_by_title(key.name, exact=True))
        expect(item.last).to_contain_text(status)
        if not record.evaluation.passed:
            failed.append(record.evaluation)
    ui.shot("checks")
    assert [e.check_name for e in failed] == [FAILING_CHECK]
    for evaluation in failed:
        ui.page.get_by_title(evaluation.check_name, exact=True).first.click()
        expect(ui.page.get_by_text(evaluation.description, exact=True)).to_be_visible()
        ui.shot(f"check-{evaluation.check_name}")


def test_promotion_refused_with_the_failed_check_named(ui: UI, platform: Platform) -> None:
    assert platform.production_version() == platform.first_version
    ui.open("/assets/production_model")
    ui.button("Materialize").click()
    run_id = ui.launched_run()
    assert ui.run_outcome(run_id) == "Failure"
    refusal = f"refusing to promote staging v{platform.second_version}"
    expect(ui.page.get_by_text(refusal).first).to_be_visible()
    expect(ui.page.get_by_text(f"{FAILING_CHECK}: FAILED").first).to_be_visible()
    ui.shot("refused")
    assert platform.production_version() == platform.first_version


def test_promote_by_clicking_materialize(ui: UI, platform: Platform) -> None:
    # v2's checks evaluated again under the default criteria, which it passes.
    rerun = materialize(platform.defs, platform.instance, "backtest_report")
    assert rerun.success, failure_message(rerun)
    ui.open("/assets/production_model")
    ui.button("Materialize").click()
    run_id = ui.launched_run()
    assert ui.run_outcome(run_id) == "Success"
    ui.shot("promoted")
    ui.open("/assets/production_model")
    expect(metadata_value(ui, "production_version")).to_have_text(platform.second_version)
    expect(metadata_value(ui, "previous_version")).to_have_text(platform.first_version)
    ui.shot("production-version")
    assert platform.production_version() == platform.second_version


def test_rollback_job_from_the_launchpad(ui: UI, platform: Platform) -> None:
    assert platform.production_version() == platform.second_version
    ui.open(f"/locations/{LOCATION}/jobs/rollback_job/playground")
    editor = ui.page.locator(".CodeMirror").first
    editor.click()
    ui.page.keyboard.press("Control+A")
    ui.page.keyboard.insert_text(
        "ops:\n  rollback_production:\n    config:\n      reason: browser test rollback\n"
    )
    expect(ui.page.get_by_text("No errors")).to_be_visible()
    ui.shot("launchpad")
    ui.button("Launch Run").click()
    ui.page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = ui.page.url.rsplit("/", 1)[-1]
    assert ui.run_outcome(run_id) == "Success"
    ui.shot("rolled-back")
    ui.open("/assets/production_model")
    expect(metadata_value(ui, "production_version")).to_have_text(platform.first_version)
    expect(metadata_value(ui, "reason")).to_have_text("browser test rollback")
    ui.shot("production-version")
    assert platform.production_version() == platform.first_version


def test_switch_the_drift_sensor_on(ui: UI, platform: Platform) -> None:
    assert sensor_status(platform, "drift_sensor") == "STOPPED"
    ui.open("/automation")
    link = ui.page.locator("a[href$='/sensors/drift_sensor']")
    row = ui.page.locator("div[class*=ListItem_listItem]").filter(has=link)
    toggle = row.locator("label[class*=formatSwitch]")  # the on/off switch a person clicks
    switch = toggle.get_by_role("checkbox")
    expect(switch).not_to_be_checked()
    toggle.click()
    expect(switch).to_be_checked()
    ui.shot("sensor-on")
    wait_for_sensor(platform, "drift_sensor", "RUNNING")
    toggle.click()  # off again: a drift retrain must not outlive the test
    expect(switch).not_to_be_checked()
    wait_for_sensor(platform, "drift_sensor", "STOPPED")
