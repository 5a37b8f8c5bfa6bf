"""The Dagster UI as a user drives it: headless Chromium (Playwright) against a real `dagster dev`.

One `dagster dev` serves a temporary home folder that a small in-process run filled, on a small
market with a strong planted signal where the real promotion criteria have the power to pass:
staging v1 passed every check and was promoted plainly, staging v2's checks were then judged
under a stricter policy than the deployment's (one fails). Its notifications go to a webhook
receiver of the test. The tests then work through the UI in file order, as a person would:
browse the lineage, read the checks, try to loosen the gate from retrain_job's Launchpad (refused
before a run exists), read the refusal of v2 (a verdict, not a failure, and no failure notified),
promote it after its checks are evaluated again under the deployed criteria, roll back, find
production moved outside the platform (production_model's own check, the refusal, the webhook)
and put it right, and switch the drift sensor on; each builds on the state the previous one left.
Every step is screenshotted under .mlplatform-test-artifacts/browser/<test>/; the folder is kept,
and its path printed, when the test fails. Chromium is Debian's (/usr/bin/chromium, installed by
.ci/run): Playwright drives it through the driver its wheel ships, nothing is downloaded.
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
import yaml
from mlflow.tracking import MlflowClient
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from mlplatform import config
from mlplatform.cli import prepare_home
from mlplatform.data import generate_market
from mlplatform.definitions import build_definitions
from mlplatform.orchestration.assets.deployment import PRODUCTION_KEY, VERDICT_TAG
from mlplatform.orchestration.resources import MarketDataSource
from mlplatform.promotion import PromotionPolicy
from mlplatform.registry import get_alias_version
from mlplatform_tests.conftest import (
    RETRAIN_ASSETS,
    WebhookReceiver,
    failure_message,
    materialize,
    small_run_config,
    webhook_server,
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
# Ceilings, not waits: every wait ends as soon as what it waits for shows up. Two cores shared
# with other work can take tens of seconds for a page's queries or a run's worker process.
UI_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 300_000  # a run launched from the UI starts a worker process that imports it all
SENSOR_TIMEOUT_S = 300.0  # a sensor ticks every 30 s when the daemon gets its turn

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
ALIAS_CHECK = "production_alias_set_by_platform"
# What a crash shows and a verdict must not: Python's traceback, Dagster's exception classes.
CRASH_TEXT = re.compile(r"Traceback|dagster\._core|events\.Failure")
# Issue 25's reproduction: the promotion criteria loosened for one run from the Launchpad.
LOOSENED_GATE = """resources:
  policy:
    config:
      min_dsr: 0.0
      min_sharpe: -100000.0
ops:
  backtest_report:
    config:
      cost_bps: 1000
"""
COST_TYPO = """ops:
  backtest_report:
    config:
      cost_bps: 5000
"""
# Does the log row clip this message (the UI then offers "View full message")?
CLIPPED = """el => {
    const box = el.closest('div[style*="overflow: hidden"]');
    const content = box?.firstElementChild?.firstElementChild;
    return content != null && content.scrollHeight > box.clientHeight;
}"""
EDITOR = "document.querySelector('.CodeMirror').CodeMirror"  # the Launchpad's CodeMirror 5


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
    webhook: WebhookReceiver  # where the code location's notifications go
    first_version: str
    second_version: str

    def production_version(self) -> str | None:
        version = get_alias_version(
            config.mlflow_tracking_uri(), config.MODEL_NAME, config.PRODUCTION_ALIAS
        )
        return None if version is None else str(version.version)

    def runs_of(self, job_name: str) -> int:
        return self.instance.get_runs_count(dg.RunsFilter(job_name=job_name))

    def run_id(self, prefix: str) -> str:
        """The full id of the run a toast names by its first 8 characters."""
        (run_id,) = [r.run_id for r in self.instance.get_runs(limit=50) if r.run_id[:8] == prefix]
        return run_id

    def notifications(self, kind: str) -> list[dict]:
        return [m for m in self.webhook.received if m.get("kind") == kind]

    def wait_for_notification(self, kind: str, words: str) -> list[dict]:
        """The `kind` notifications received once one whose title has `words` arrived."""
        deadline = time.time() + SENSOR_TIMEOUT_S
        while not any(words in m["title"] for m in self.notifications(kind)):
            assert time.time() < deadline, f"no {kind} notification with {words!r}"
            time.sleep(0.5)
        return self.notifications(kind)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("browser")
    data_file = root / "prices.csv"
    market = generate_market(seed=5, n_tickers=8, years=5, as_of="2026-06-30", signal_strength=0.9)
    market.prices.to_csv(data_file, index=False)
    with webhook_server() as webhook, pytest.MonkeyPatch.context() as patch:
        patch.delenv(config.SLACK_TOKEN_ENV, raising=False)
        patch.setenv(config.WEBHOOK_URL_ENV, webhook.url)  # `dagster dev` notifies the test
        for name in (config.MLFLOW_TRACKING_URI_ENV, config.OPTUNA_STORAGE_ENV):
            patch.delenv(name, raising=False)
        patch.delenv(config.PROMOTION_POLICY_ENV, raising=False)  # the default criteria
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
            wait_for_location(port, process, time.time() + 300, dev_log(dagster_home))
            yield Platform(
                url=f"http://127.0.0.1:{port}",
                port=port,
                home=root / "home",
                defs=defs,
                instance=instance,
                webhook=webhook,
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

    def toast_run(self) -> str:
        """The first 8 characters of the run id the "Launched run" toast names."""
        toast = self.page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
        expect(toast).to_be_visible()
        return toast.inner_text().rsplit(" ", 1)[-1]

    def launched_run(self) -> str:
        """Follow the "Launched run" toast to the run's page; return the run id."""
        self.toast_run()
        self.page.get_by_role("link", name="View", exact=True).click()
        self.page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        return self.page.url.rsplit("/", 1)[-1]

    def run_outcome(self, run_id: str) -> str:
        """Wait on the run page until the run ends; its status as the page shows it."""
        status = self.page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
        expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
        return status.inner_text()

    def full_log_message(self, start: str) -> str:
        """On a run page: the whole text of the log message that starts with `start`, as a person
        reads it: in its row, or in the "View full message" dialog when the row clips it."""
        starting = re.compile("^" + re.escape(start))
        message = self.page.get_by_text(starting).first
        expect(message).to_be_visible()
        if not message.evaluate(CLIPPED):
            self.shot("message")
            return message.inner_text()
        view = self.page.get_by_text("View full message", exact=True)
        deadline = time.time() + UI_TIMEOUT_MS / 1000
        while True:  # the button shows while the pointer rests on the message, and a last log
            message.hover()  # line arriving can scroll the message away: point at it again
            try:
                view.click(timeout=2_000)
                break
            except PlaywrightError:
                assert time.time() < deadline, f"no full message of {start!r}"
        dialog = self.page.get_by_role("dialog")
        full = dialog.get_by_text(starting)
        expect(full).to_be_visible()
        text = full.inner_text()
        self.shot("full-message")
        self.button("OK").click()
        expect(dialog).to_be_hidden()
        return text

    def editor_text(self) -> str:
        """Everything in the Launchpad's config editor (CodeMirror draws only what is in view)."""
        return str(self.page.evaluate(f"{EDITOR}.getValue()"))

    def type_config(self, text: str) -> None:
        """Replace the Launchpad's run config with `text`, as typed."""
        self.page.locator(".CodeMirror").first.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.insert_text(text)
        self.page.wait_for_function(f"text => {EDITOR}.getValue() === text", arg=text)

    def launch_from_launchpad(self, job: str, run_config: str) -> str:
        """Launch `job` from its Launchpad with `run_config`; the run's id, on its page."""
        self.open(f"/locations/{LOCATION}/jobs/{job}/playground")
        expect(self.page.locator(".CodeMirror").first).to_be_visible()
        self.type_config(run_config)
        expect(self.page.get_by_text("No errors")).to_be_visible()
        self.shot(f"launchpad-{job}")
        self.button("Launch Run").click()
        self.page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        return self.page.url.rsplit("/", 1)[-1]

    def check_item(self, name: str) -> Locator:
        """A check's entry in an asset's Checks tab: its name and its latest status."""
        return self.page.locator("span").filter(has=self.page.get_by_title(name, exact=True)).last

    def execute_check(self, platform: Platform, asset: str, name: str) -> str:
        """Click Execute on the check `name` of `asset` (its Checks tab); the run's id."""
        self.open(f"/assets/{asset}?view=checks")
        self.check_item(name).click()
        self.button("Execute").click()
        return platform.run_id(self.toast_run())


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


def checks_shown(ui: UI, asset: str) -> int:
    """How many checks the asset's Checks tab lists, as its heading counts them."""
    ui.open(f"/assets/{asset}?view=checks")
    heading = ui.page.get_by_text(re.compile(r"^Checks \(\d+\)$"))
    expect(heading).to_be_visible()
    count = re.search(r"\d+", heading.inner_text())
    assert count is not None
    return int(count.group())


def assert_no_crash_text(ui: UI, text: str) -> None:
    assert not CRASH_TEXT.search(text), text
    expect(ui.page.locator("body")).not_to_contain_text(CRASH_TEXT)


def sensor_selector(name: str) -> dict:
    return {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "sensorName": name,
    }


def sensor_status(platform: Platform, name: str) -> str:
    query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
        ... on Sensor { sensorState { status } } } }"""
    data = graphql(platform.port, query, {"s": sensor_selector(name)})
    return data["sensorOrError"]["sensorState"]["status"]


def wait_for_sensor(platform: Platform, name: str, status: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while sensor_status(platform, name) != status:
        assert time.time() < deadline, f"{name} did not become {status}"
        time.sleep(0.5)


def finished_tick_after(platform: Platform, name: str, after: float) -> dict:
    """The first tick of sensor `name` that started after `after` (epoch seconds) and ended: the
    daemon evaluated everything stored before it (a run-status sensor's cursor reads the event
    log in order)."""
    query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
        ... on Sensor { sensorState { ticks(limit: 10) {
            status timestamp endTimestamp error { message } } } } } }"""
    deadline = time.time() + SENSOR_TIMEOUT_S
    while True:
        data = graphql(platform.port, query, {"s": sensor_selector(name)})
        ticks = data["sensorOrError"]["sensorState"]["ticks"]
        done = [t for t in ticks if t["timestamp"] > after and t["endTimestamp"] is not None]
        if done:
            return min(done, key=lambda t: t["timestamp"])
        assert time.time() < deadline, f"{name} did not tick after the run ended: {ticks}"
        time.sleep(1)


def launch_through_graphql(platform: Platform, job: str, run_config: dict) -> dict:
    """What the Launchpad's button sends, sent without the button: the server's answer."""
    query = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
        __typename ... on RunConfigValidationInvalid { errors { message } }
        ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": job,
        },
        "runConfigData": run_config,
        "mode": "default",
    }
    return graphql(platform.port, query, {"p": params})["launchPipelineExecution"]


def test_lineage_shows_every_asset_in_its_group(ui: UI, platform: Platform) -> None:
    graph = platform.defs.resolve_asset_graph()
    expected = {
        key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()
    }
    assert expected["market_truth"] == "data"  # the worktree's code location, not another one
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
    checks = platform.defs.resolve_asset_graph().get(dg.AssetKey("backtest_report")).check_keys
    assert checks_shown(ui, "backtest_report") == len(checks)
    failed = []
    for key in sorted(checks, key=lambda k: k.name):
        record = platform.instance.get_latest_asset_check_evaluation_record(key)
        assert record is not None and record.evaluation is not None, key
        status = "Succeeded" if record.evaluation.passed else "Failed"
        expect(ui.check_item(key.name)).to_contain_text(status)
        if not record.evaluation.passed:
            failed.append(record.evaluation)
    ui.shot("checks")
    assert [e.check_name for e in failed] == [FAILING_CHECK]
    for evaluation in failed:
        ui.page.get_by_title(evaluation.check_name, exact=True).first.click()
        expect(ui.page.get_by_text(evaluation.description, exact=True)).to_be_visible()
        ui.shot(f"check-{evaluation.check_name}")


def test_the_launchpad_refuses_to_loosen_the_gate_or_a_setting_out_of_range(
    ui: UI, platform: Platform
) -> None:
    retrains = platform.runs_of("retrain_job")
    ui.open(f"/locations/{LOCATION}/jobs/retrain_job/playground")
    editor = ui.page.locator(".CodeMirror-code")
    expect(editor).to_contain_text("cost_bps")  # the scaffold of the job's settings is in
    expect(ui.page.get_by_text("No errors")).to_be_visible()
    scaffold = ui.editor_text()
    assert "backtest_report" in scaffold and "tuned_params" in scaffold, scaffold
    assert "resources" not in scaffold and "policy" not in scaffold, scaffold
    ui.shot("scaffold")

    # Issue 25's reproduction: refused as typed, and the button cannot launch it.
    ui.type_config(LOOSENED_GATE)
    expect(
        ui.page.get_by_text('Received unexpected config entry "resources" at the root')
    ).to_be_visible()
    expect(ui.button("Launch Run")).to_be_disabled()
    ui.shot("loosened-gate-refused")
    refused = launch_through_graphql(platform, "retrain_job", yaml.safe_load(LOOSENED_GATE))
    assert refused["__typename"] == "RunConfigValidationInvalid", refused
    assert any('"resources"' in e["message"] for e in refused["errors"]), refused
    ui.button("Remove extra config").click()  # what the Launchpad offers: the block goes
    extra = ui.page.get_by_role("dialog")
    expect(extra.locator("code")).to_have_text(["resources"])
    extra.get_by_role("button", name="Confirm", exact=True).click()
    expect(ui.page.get_by_text("No errors")).to_be_visible()
    assert "resources" not in ui.editor_text() and "cost_bps: 1000" in ui.editor_text()

    # A typo out of range is refused when the run is launched, naming the field.
    ui.type_config(COST_TYPO)
    expect(ui.page.get_by_text("No errors")).to_be_visible()  # the schema knows types only
    ui.button("Launch Run").click()
    expect(ui.page.get_by_role("dialog")).to_contain_text(
        "cost_bps=5000.0: Input should be less than or equal to 1000"
    )
    ui.shot("typo-refused")
    assert platform.runs_of("retrain_job") == retrains  # neither launch made a run


def test_promotion_refused_is_a_verdict_naming_the_failed_check_once(
    ui: UI, platform: Platform
) -> None:
    assert platform.production_version() == platform.first_version
    shown = checks_shown(ui, "backtest_report")
    promotion_run = platform.instance.get_latest_materialization_event(PRODUCTION_KEY)
    assert promotion_run is not None
    ui.open("/assets/production_model")
    ui.button("Materialize").click()
    run_id = ui.launched_run()
    assert ui.run_outcome(run_id) == "Success"  # a verdict, not a failed run
    verdict = ui.full_log_message(f"promotion of staging v{platform.second_version} refused")
    headline, *lines = verdict.splitlines()
    counts = re.search(
        rf"refused: (\d+) of the (\d+) promotion checks do not vouch for it "
        rf"\(of the {shown} checks on backtest_report, (\d+) only warns?\)$",
        headline,
    )
    assert counts, headline  # the count the Checks tab shows
    failing, blocking, warning = map(int, counts.groups())
    assert blocking + warning == shown and 1 <= failing <= blocking
    assert verdict.count(FAILING_CHECK) == 1 and verdict.count("FAILED") == 1, verdict
    assert any(line.startswith(f"- {FAILING_CHECK}: FAILED — ") for line in lines), verdict
    assert "Next:" in lines  # then the step that helps: its checks were judged by another policy
    assert any(line.startswith("- evaluate this version again") for line in lines), verdict
    assert_no_crash_text(ui, verdict)
    ui.shot("refused")
    run = platform.instance.get_run_by_id(run_id)
    assert run is not None and run.tags.get(VERDICT_TAG) == "refused"

    ui.open("/assets/production_model?view=events")  # the verdict on production_model's page
    expect(ui.page.get_by_role("link", name=run_id[:8], exact=True)).to_be_visible()
    expect(ui.page.get_by_text(headline).first).to_be_visible()
    ui.shot("verdict-on-the-asset")
    ui.open("/assets/production_model")  # production keeps its green status
    latest = ui.page.get_by_text("Latest materialization", exact=True).locator("xpath=..")
    expect(latest.get_by_role("img", name="run_success")).to_be_visible()
    expect(latest.get_by_role("link")).to_have_attribute("href", re.compile(promotion_run.run_id))
    expect(ui.page.get_by_text("Failed", exact=True)).to_have_count(0)
    ui.shot("production-intact")
    assert platform.production_version() == platform.first_version

    # No failure notified: the failure sensor ticked after the run ended, and nothing came.
    record = platform.instance.get_run_record_by_id(run_id)
    assert record is not None and record.end_time is not None
    tick = finished_tick_after(platform, "run_failure_notification_sensor", record.end_time)
    assert tick["status"] in ("SUCCESS", "SKIPPED"), tick
    assert platform.notifications("run_failed") == []


def test_promote_by_clicking_materialize(ui: UI, platform: Platform) -> None:
    # The verdict's next step: v2's checks evaluated again under the deployed criteria.
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
    platform.wait_for_notification("promoted", f"v{platform.second_version} promoted")


def test_rollback_job_from_the_launchpad(ui: UI, platform: Platform) -> None:
    assert platform.production_version() == platform.second_version
    run_id = ui.launch_from_launchpad(
        "rollback_job",
        "ops:\n  rollback_production:\n    config:\n      reason: browser test rollback\n",
    )
    assert ui.run_outcome(run_id) == "Success"
    ui.shot("rolled-back")
    ui.open("/assets/production_model")
    expect(metadata_value(ui, "production_version")).to_have_text(platform.first_version)
    expect(metadata_value(ui, "reason")).to_have_text("browser test rollback")
    ui.shot("production-version")
    assert platform.production_version() == platform.first_version


def test_production_moved_outside_the_platform_is_shown_refused_and_put_right(
    ui: UI, platform: Platform
) -> None:
    first, second = platform.first_version, platform.second_version
    assert platform.production_version() == first
    # What MLflow's "Promote model" button does: only the alias moves.
    client = MlflowClient(config.mlflow_tracking_uri())
    client.set_registered_model_alias(config.MODEL_NAME, config.PRODUCTION_ALIAS, second)
    check_key = dg.AssetCheckKey(PRODUCTION_KEY, ALIAS_CHECK)

    # production_model's own check, run without a retrain, names the move...
    run_id = ui.execute_check(platform, "production_model", ALIAS_CHECK)
    moved = (
        f"production points at v{second}, but the platform's last recorded move was the "
        f"rollback of v{first}"
    )
    expect(ui.page.get_by_text(moved).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(ui.page.get_by_text("MOVED OUTSIDE THE PLATFORM").first).to_be_visible()
    expect(ui.check_item(ALIAS_CHECK)).to_contain_text("Failed")
    ui.shot("check-failed")
    evaluation = platform.instance.get_latest_asset_check_evaluation_record(check_key)
    assert evaluation is not None and evaluation.run_id == run_id
    assert evaluation.evaluation is not None and not evaluation.evaluation.passed
    # ...and the channels carry it.
    platform.wait_for_notification("alias_moved_outside", f"(now v{second})")

    # A promotion refuses, naming the move and how to put it right.
    ui.open("/assets/production_model")
    ui.button("Materialize").click()
    refusal_run = ui.launched_run()
    assert ui.run_outcome(refusal_run) == "Success"
    verdict = ui.full_log_message("promotion refused: ")
    assert moved in verdict, verdict
    assert "Put it right first: launch rollback_job with to_version" in verdict, verdict
    assert_no_crash_text(ui, verdict)
    ui.shot("refused")
    assert platform.production_version() == second  # a refusal moves nothing

    # Put right through the platform: rollback_job to the version that should serve.
    reason = "put back after the alias was moved in MLflow"
    rollback_run = ui.launch_from_launchpad(
        "rollback_job",
        "ops:\n  rollback_production:\n    config:\n"
        f'      to_version: "{first}"\n      reason: {reason}\n',
    )
    assert ui.run_outcome(rollback_run) == "Success"
    ui.open("/assets/production_model")
    expect(metadata_value(ui, "production_version")).to_have_text(first)
    expect(metadata_value(ui, "reason")).to_have_text(reason)
    ui.shot("put-right")
    assert platform.production_version() == first

    # The check passes again; the move was notified once.
    run_id = ui.execute_check(platform, "production_model", ALIAS_CHECK)
    expect(
        ui.page.get_by_text(f"production v{first} is where the platform put it").first
    ).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(ui.check_item(ALIAS_CHECK)).to_contain_text("Succeeded")
    ui.shot("check-passed")
    evaluation = platform.instance.get_latest_asset_check_evaluation_record(check_key)
    assert evaluation is not None and evaluation.run_id == run_id
    assert evaluation.evaluation is not None and evaluation.evaluation.passed
    assert len(platform.notifications("alias_moved_outside")) == 1


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
