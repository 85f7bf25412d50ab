"""Acting from the console in Debian's Chromium (Playwright), against a real executor
building and running real plugin containers: upload (a folder, a file), activate with
chosen events, run another version on a project, deactivate, the Test panel, replay and
delete; each checked through the API and the audit trail it writes. Screenshots at 1280
and 375 px go to artifacts/screenshots/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PLUGINS, RunningServer
from tests.e2e.test_console import browser, sign_in  # noqa: F401 (a fixture)
from tests.e2e.test_console_operator import PHONE, SCREENSHOTS, shot
from tests.integration.tenancy import create_key

expect.set_options(timeout=60_000)


# What a browser hands the page when a file is dropped on the drop zone.
DROP_FILE = """(source) => {
  const dropped = new DataTransfer();
  dropped.items.add(new File([source], "main.py", { type: "text/x-python" }));
  const zone = document.getElementById("dropzone");
  const drop = { dataTransfer: dropped, bubbles: true, cancelable: true };
  zone.dispatchEvent(new DragEvent("drop", drop));
}"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811 (browser is the imported fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def containing(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))


def activation(server: RunningServer, project: str, name: str) -> dict[str, Any] | None:
    listed = server.api.get(f"/v1/projects/{project}/plugins").json()
    return next((a for a in listed if a["plugin"] == name), None)


def audited(server: RunningServer, name: str) -> list[str]:
    entries = server.api.get("/v1/audit", params={"target": name, "limit": 100}).json()
    return [e["action"] for e in reversed(entries)]


def open_plugin(page: Page, server: RunningServer, name: str) -> None:
    page.goto(f"{server.url}/ui/#/plugins/{name}")
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def test_upload_a_folder_activate_switch_versions_and_deactivate(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    server.push("counter", "acts")
    folder = tmp_path / "acts"
    shutil.copytree(PLUGINS / "ticker", folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0not python")
    sign_in(page, server)
    open_plugin(page, server, "acts")

    page.locator("#upload-folder").set_input_files(folder)
    message = page.locator("#upload-message")
    expect(message).to_contain_text("v2 uploaded")
    message.get_by_role("link", name="Watch the build of v2").click()
    expect(page.locator("#build-log")).to_contain_text("Built ")
    expect(page.locator("h1 .badge")).to_have_text("ACTIVE")
    versions = server.api.get("/v1/plugins/acts").json()["versions"]
    assert [(v["version"], v["status"], v["current"]) for v in versions] == [
        (1, "ACTIVE", False),
        (2, "ACTIVE", True),
    ]
    assert versions[1]["source_sha256"] != versions[0]["source_sha256"]

    open_plugin(page, server, "acts")
    page.locator("#activate-project").fill("acts-proj")
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.locator("#activations")).to_contain_text("v2 (follows current)")
    v2_row = page.locator("#versions tbody tr").filter(has_text="v2")
    expect(v2_row).to_contain_text("acts-proj")
    expect(v2_row).to_contain_text("current")
    assert activation(server, "acts-proj", "acts") is not None

    # Back to v1 on that project (a pinned activation), then forward to the current one.
    page.get_by_label("Version on acts-proj", exact=True).select_option("1")
    page.get_by_role("button", name="Switch version on acts-proj").click()
    expect(page.locator("#activations")).to_contain_text("v1 (pinned)")
    expect(page.locator("#versions tbody tr").filter(has_text="v1")).to_contain_text("acts-proj")
    expect(v2_row).not_to_contain_text("acts-proj")
    pinned = activation(server, "acts-proj", "acts")
    assert pinned is not None
    assert (pinned["pinned_version"], pinned["runs_version"]) == (1, 1)
    assert pinned["events_default"] is True
    shot(page, "console-actions-projects")
    page.get_by_label("Version on acts-proj", exact=True).select_option("")
    page.get_by_role("button", name="Switch version on acts-proj").click()
    expect(page.locator("#activations")).to_contain_text("v2 (follows current)")
    assert activation(server, "acts-proj", "acts") == {**pinned, "pinned_version": None,
                                                       "runs_version": 2}  # fmt: skip

    # Chosen events on a second project, then off it again.
    page.locator("#activate-project").fill("acts-two")
    page.locator("#activate-extra").fill("asset.*, onReview")
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.locator("#activations")).to_contain_text("acts-two")
    two = activation(server, "acts-two", "acts")
    assert two is not None and two["events"] == ["onSubmit", "asset.*", "onReview"]
    page.get_by_role("button", name="Deactivate on acts-two").click()
    expect(page.locator("#activations")).not_to_contain_text("acts-two")
    assert activation(server, "acts-two", "acts") is None
    assert activation(server, "acts-proj", "acts") is not None

    assert audited(server, "acts") == [
        "plugin.upload",
        "plugin.upload",
        "plugin.activate",
        "plugin.activate",
        "plugin.activate",
        "plugin.activate",
        "plugin.deactivate",
    ]


def test_an_upload_the_api_refuses_shows_its_message_and_changes_nothing(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    server.push("counter", "refused")
    bad = tmp_path / "main.py"
    bad.write_text("class PluginHandler:\n    def on_submit(self\n")
    sign_in(page, server)
    open_plugin(page, server, "refused")
    page.locator("#upload-file").set_input_files(bad)
    alert = page.locator("#upload-message [role=alert]")
    expect(alert).to_contain_text("main.py")
    expect(alert).to_contain_text("line 2")
    versions = server.api.get("/v1/plugins/refused").json()["versions"]
    assert [v["version"] for v in versions] == [1]
    assert audited(server, "refused") == ["plugin.upload"]

    # A good file dropped on the drop zone is the next version.
    page.evaluate(DROP_FILE, (PLUGINS / "ticker" / "main.py").read_text())
    expect(page.locator("#upload-message")).to_contain_text("v2 uploaded")
    assert audited(server, "refused") == ["plugin.upload", "plugin.upload"]
    page.locator("#upload-message").get_by_role("link", name="Watch the build of v2").click()
    expect(page.locator("h1 .badge")).to_have_text("ACTIVE")


def test_the_test_panel_posts_a_sample_and_shows_the_run_live(
    page: Page, server: RunningServer
) -> None:
    samples = server.api.get("/v1/samples/events").json()
    assert set(samples) == {"onSubmit", "onReview", "onCustomInterfaceClick",
                            "onSendBackToQueue", "asset.issue.created"}  # fmt: skip
    assert samples["onSubmit"]["label"]["author"] == {"email": "labeler@example.com"}
    server.push("ticker", "tested")
    server.activate("tested", "test-proj")
    sign_in(page, server)
    open_plugin(page, server, "tested")
    event = page.get_by_label("Event (JSON)")
    expect(event).to_have_value(containing('"project_id": "test-proj"'))
    expect(event).to_have_value(containing('"email": "labeler@example.com"'))

    event.fill("{not json")
    page.get_by_role("button", name="Send event").click()
    expect(page.locator("#test-message")).to_contain_text("The event is not JSON")

    page.get_by_role("button", name="Reset to sample").click()
    page.get_by_role("button", name="Send event").click()
    run = page.locator("#test-runs .test-run")
    expect(run.locator(".logs")).to_contain_text("tick 1 of 4 for asset-001")
    shot(page, "console-test-panel-live")
    expect(run).to_contain_text("ended")
    expect(run.locator(".run-status")).to_contain_text("succeeded")
    expect(run.locator(".logs")).to_contain_text("ticker done")
    # The README's picture (docs/img/console-test-panel.png): the panel after its run.
    page.locator("section[aria-labelledby=test-title]").screenshot(
        path=str(SCREENSHOTS / "readme-console-test-panel.png")
    )
    run_id = run.get_attribute("data-run")
    assert server.api.get(f"/v1/invocations/{run_id}").json()["status"] == "succeeded"

    # An event type the activation does not take: no run, and the reason.
    text = event.input_value().replace('"type": "onSubmit"', '"type": "onReview"')
    event.fill(text)
    page.get_by_role("button", name="Send event").click()
    expect(page.locator("#test-message [role=alert]")).to_contain_text(
        "started no run: tested on test-proj runs for onSubmit, not onReview"
    )


def test_replay_a_run_and_delete_the_plugin(page: Page, server: RunningServer) -> None:
    server.push("counter", "doomed")
    server.activate("doomed", "doomed-proj")
    first = server.run_event(type="onSubmit", project_id="doomed-proj", asset_id="r-1", label={})
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/runs/{first['id']}")
    expect(page.locator("#run-facts")).to_contain_text("succeeded")
    page.get_by_role("button", name="Replay").click()
    expect(page).not_to_have_url(containing(first["id"]))
    replay_id = page.url.rsplit("/", 1)[-1]
    replay = server.wait_run(replay_id)
    assert replay["replay_of"] == first["id"] and replay["status"] == "succeeded"
    expect(page.locator("#run-facts")).to_contain_text("r-1")

    open_plugin(page, server, "doomed")
    delete = page.get_by_role("button", name="Delete plugin")
    expect(delete).to_be_disabled()
    page.get_by_label("Type doomed to confirm").fill("doome")
    expect(delete).to_be_disabled()
    page.get_by_label("Type doomed to confirm").fill("doomed")
    delete.click()
    expect(page.get_by_role("heading", name="Plugins", exact=True)).to_be_visible()
    expect(page.locator("main").get_by_role("link", name="doomed")).to_have_count(0)
    assert server.api.get("/v1/plugins/doomed").status_code == 404
    assert audited(server, "doomed")[-1] == "plugin.delete"
    assert audited(server, first["id"]) == ["invocation.replay"]


def test_a_key_without_the_scope_is_refused_with_the_api_message(
    page: Page, server: RunningServer
) -> None:
    server.push("counter", "guarded")
    reader = create_key(server, "default", ["plugins:read", "logs:read"], name="reader")
    page.goto(f"{server.url}/ui/")
    page.get_by_label("API key").fill(reader["key"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Plugins")).to_be_visible()
    open_plugin(page, server, "guarded")
    page.locator("#activate-project").fill("guarded-proj")
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.locator("#activation-message [role=alert]")).to_contain_text(
        "lacks the scope 'plugins:write'"
    )
    assert activation(server, "guarded-proj", "guarded") is None
    assert audited(server, "guarded") == ["plugin.upload"]


def test_the_actions_fit_a_375_px_screen(browser: Browser, server: RunningServer) -> None:  # noqa: F811
    server.push("counter", "pocket")
    server.activate("pocket", "pocket-proj")
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        sign_in(page, server)
        open_plugin(page, server, "pocket")
        expect(page.locator("#activations")).to_contain_text("pocket-proj")
        # The form fills its sample event once the page has the activations: send that.
        event = page.get_by_label("Event (JSON)")
        expect(event).to_have_value(containing('"project_id": "pocket-proj"'))
        page.get_by_role("button", name="Send event").click()
        expect(page.locator("#test-runs .run-status")).to_contain_text("succeeded")
        widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")
        assert max(widths) <= PHONE["width"], widths
        shot(page, "phone-plugin-actions")
        for part in ("projects-title", "test-title", "upload-title"):
            section = page.locator(f"section[aria-labelledby={part}]")
            section.screenshot(path=str(SCREENSHOTS / f"phone-{part.removesuffix('-title')}.png"))
    finally:
        context.close()
