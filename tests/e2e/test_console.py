"""The web console in a real browser: Debian's Chromium driven by Playwright, against a
real executor running real plugin containers. Screenshots go to artifacts/ (kept by CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from executor.store.tables import GatewayCall
from tests.conftest import OPERATOR_KEY, REPO, RunningServer
from tests.e2e.painter import HTML, TWO_LINES, write_painter

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts"
LIVE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, server: RunningServer) -> None:
    page.goto(f"{server.url}/ui/")
    key = page.get_by_label("API key")
    expect(key).to_be_focused()
    key.type(OPERATOR_KEY)
    page.keyboard.press("Enter")  # the whole sign-in works from the keyboard
    expect(page.get_by_role("heading", name="Plugins")).to_be_visible()


def test_sign_in_open_a_plugin_and_watch_a_live_run(page: Page, server: RunningServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    server.push("ticker")
    server.activate("ticker", "console-proj")
    sign_in(page, server)
    row = page.get_by_role("row").filter(has_text="ticker")
    expect(row).to_contain_text("ACTIVE")
    expect(row).to_contain_text("console-proj")
    link = page.get_by_role("link", name="ticker", exact=True)
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="ticker")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("onSubmit")

    (run_id,) = server.post_event(
        type="onSubmit", project_id="console-proj", asset_id="inv-9", label={}
    )["invocations"]
    live = page.locator("#live-logs")
    expect(live).to_contain_text("tick 1 of 4 for inv-9", timeout=LIVE_TIMEOUT_MS)
    # The line is on screen while the plugin is still running.
    assert server.api.get(f"/v1/invocations/{run_id}").json()["status"] == "running"
    expect(live.locator(".lvl-WARNING")).to_contain_text("tick 3 of 4", timeout=LIVE_TIMEOUT_MS)
    runs = page.locator("#runs")
    expect(runs).to_contain_text("inv-9", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "console-plugin-live.png"), full_page=True)

    page.get_by_role("link", name=run_id[:8]).click()
    logs = page.locator("#run-logs")
    expect(logs).to_contain_text("ticker done", timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_text("ended", exact=True)).to_be_visible(timeout=10_000)
    expect(page.locator("#run-facts")).to_contain_text("succeeded")
    expect(page.locator("#run-facts")).to_contain_text("inv-9")
    expect(page.get_by_text("No calls to the platform API.")).to_be_visible()
    assert logs.locator(".line").count() == 6  # 5 of the plugin's, the SYSTEM end line
    expect(logs.locator(".lvl-SYSTEM")).to_contain_text("run ended succeeded in ")
    page.get_by_label("Minimum level").select_option("WARNING")
    expect(logs.locator(".line:visible")).to_have_count(2)  # SYSTEM lines always show
    page.get_by_label("Minimum level").select_option("DEBUG")
    page.screenshot(path=str(ARTIFACTS / "console-run.png"), full_page=True)


def test_build_log_and_system_lines(page: Page, server: RunningServer) -> None:
    server.push("raising")
    server.activate("raising", "console-fail")
    run = server.run_event(type="onSubmit", project_id="console-fail", asset_id="bad-1", label={})
    assert run["status"] == "failed"
    with server.service.db.session() as session:
        # As the gateway records them (this plugin makes no platform call itself).
        session.add(
            GatewayCall(
                invocation_id=run["id"],
                method="POST",
                path="/api/label/v2/graphql",
                status=502,
                duration_ms=31,
                error="platform unreachable",
            )
        )
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/runs/{run['id']}")
    system = page.locator("#run-logs .lvl-SYSTEM")
    expect(system).to_contain_text(
        "run ended failed: ZeroDivisionError: division by zero (main.py:5)",
        timeout=LIVE_TIMEOUT_MS,
    )
    facts = page.locator("#run-facts")
    expect(facts).to_contain_text("failed")
    # The run's error summary: the exception, its message and its line in the plugin.
    for fact, value in (
        ("Error type", "ZeroDivisionError"),
        ("Error message", "division by zero"),
        ("Error location", "main.py:5"),
    ):
        expect(facts.locator(f"dt:text-is('{fact}') + dd")).to_have_text(value)
    page.screenshot(path=str(ARTIFACTS / "console-run-failed.png"), full_page=True)
    calls = page.get_by_role("row").filter(has_text="/api/label/v2/graphql")
    expect(calls).to_contain_text("502")
    expect(calls).to_contain_text("platform unreachable")
    page.goto(f"{server.url}/ui/#/plugins/raising/versions/1/build")
    expect(page.locator("#build-log")).to_contain_text("Built ", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("h1 .badge")).to_have_text("ACTIVE")
    page.screenshot(path=str(ARTIFACTS / "console-build-log.png"), full_page=True)


def test_the_build_log_shows_steps_and_hides_layer_lines_until_asked(
    page: Page, server: RunningServer
) -> None:
    server.push("raising", "console_steps")
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/plugins/console_steps/versions/1/build")
    log = page.locator("#build-log")
    expect(page.locator("h1 .badge")).to_have_text("ACTIVE", timeout=LIVE_TIMEOUT_MS)
    steps = log.locator(".bl-step")
    expect(steps.filter(has_text="==> Adding the plugin's code: done in ")).to_have_count(1)
    expect(steps.filter(has_text="==> Built plugin-executor/")).to_have_count(1)
    layer = log.locator(".bl-detail").filter(has_text="Step 1/")
    expect(layer).to_have_count(1)
    expect(layer).to_be_hidden()
    page.locator("#build-layers").check()
    expect(layer).to_be_visible()
    expect(
        log.locator(".bl-output").filter(has_text="import check: plugin_code.main")
    ).to_be_visible()
    page.locator("#build-layers").uncheck()
    expect(layer).to_be_hidden()


def test_plugin_output_is_text_never_markup_nor_a_line_of_its_own(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    """The console puts a record's content in a text node: HTML stays text, a painted
    'SYSTEM run ended' stays inside the plugin's own INFO or WARNING line, and a record's
    later line stays in that record (the CLI side: tests/e2e/test_cli_escapes.py)."""
    server.push(write_painter(tmp_path / "painter"))
    server.activate("painter", "console-paint")
    run = server.run_event(type="onSubmit", project_id="console-paint", asset_id="p-1", label={})
    assert run["status"] == "succeeded"
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/runs/{run['id']}")
    logs = page.locator("#run-logs")
    expect(logs).to_contain_text("bold</b>", timeout=LIVE_TIMEOUT_MS)
    assert [line.get_attribute("data-level") for line in logs.locator(".line").all()] == [
        "INFO",
        "INFO",
        "WARNING",
        "INFO",
        "SYSTEM",  # the executor's own end line, after the plugin's
    ]
    expect(logs.locator(".lvl-SYSTEM")).to_have_count(1)
    expect(logs.locator(".lvl-SYSTEM")).to_contain_text("run ended succeeded in ")
    expect(logs.locator(".line").nth(1)).to_contain_text("SYSTEM run ended: succeeded")
    assert logs.locator(".lvl-WARNING .content").text_content() == TWO_LINES
    assert logs.locator(".line").nth(3).locator(".content").text_content() == HTML
    expect(logs.locator("img, b")).to_have_count(0)
    assert page.title() != "pwned"


def test_a_wrong_key_is_refused_and_nothing_is_shown(page: Page, server: RunningServer) -> None:
    page.goto(f"{server.url}/ui/")
    page.get_by_label("API key").fill("wrong-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown API key")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
