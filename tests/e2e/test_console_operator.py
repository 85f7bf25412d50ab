"""The console's charts and the operator's pages in Debian's Chromium (Playwright), against
a real executor: charts drawn from runs this test wrote (read back through each chart's
table toggle), tenant switching, the audit filter, keys shown once, a 375-px screen.
Screenshots go to artifacts/screenshots/ (kept by CI)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, ViewportSize, expect

from executor.statuses import InvocationStatus
from tests.conftest import RunningServer
from tests.e2e.test_console import ARTIFACTS, browser, sign_in  # noqa: F401 (a fixture)
from tests.integration.tenancy import create_key, create_tenant
from tests.stats_seed import add_queued, add_run, add_version

# Assertions wait for the page to show what they expect; 5 s (the default) is not a deadline
# two loaded cores always meet.
expect.set_options(timeout=60_000)

S = InvocationStatus
SCREENSHOTS = ARTIFACTS / "screenshots"
STATUSES = ["succeeded", "failed", "timed_out", "oom_killed", "crashed", "dead", "canceled"]
PHONE: ViewportSize = {"width": 375, "height": 740}


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811 (browser is the imported fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def label(moment: datetime) -> str:
    """A bucket as the chart tables name it."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def chart_table(page: Page, chart_id: str) -> dict[str, dict[str, str]]:
    """The values the chart ``chart_id`` drew, by x, through its "Show table" toggle."""
    figure = page.locator(f"#{chart_id}")
    expect(figure.locator(".plot canvas")).to_be_visible()
    toggle = figure.get_by_role("button", name="Show table")
    toggle.click()
    expect(figure.get_by_role("button", name="Hide table")).to_have_attribute(
        "aria-expanded", "true"
    )
    return read_table(figure.locator(".chart-table table"))


# The table's header cells and each body row's cells, read in the page in one round trip
# (a week by the hour is 168 rows: a call per cell took most of a minute on loaded cores).
READ_TABLE = """table => [
    [...table.querySelectorAll("thead th")].map(th => th.textContent),
    [...table.querySelectorAll("tbody tr")].map(
        tr => [...tr.querySelectorAll("td")].map(td => td.innerText)),
]"""


def read_table(table: Locator) -> dict[str, dict[str, str]]:
    headers, body = table.evaluate(READ_TABLE)
    return {cells[0]: dict(zip(headers[1:], cells[1:], strict=True)) for cells in body}


def test_overview_charts_runs_per_hour_failures_and_queue(
    page: Page, server: RunningServer
) -> None:
    db, hour = server.service.db, this_hour()
    chartee = add_version(db, "default", "chartee", built_at=hour - timedelta(hours=5),
                          build_ms=900, failed=False)  # fmt: skip
    flaky = add_version(db, "default", "flaky", built_at=hour - timedelta(hours=5),
                        build_ms=900, failed=False)  # fmt: skip
    two_ago, one_ago = hour - timedelta(hours=2), hour - timedelta(hours=1)
    minute = timedelta(minutes=1)
    for n, status in [(5, S.SUCCEEDED), (6, S.SUCCEEDED), (7, S.FAILED)]:
        add_run(db, chartee, "default", status=status, finished_at=two_ago + n * minute,
                duration_ms=100, latency_ms=10)  # fmt: skip
    add_run(db, chartee, "default", status=S.TIMED_OUT, finished_at=one_ago + minute,
            duration_ms=60_000, latency_ms=10)  # fmt: skip
    for n in (10, 11, 12):
        add_run(db, flaky, "default", status=S.CRASHED, finished_at=one_ago + n * minute,
                duration_ms=5, latency_ms=1)  # fmt: skip
    add_queued(db, chartee, "default", queued_at=datetime.now(UTC) - timedelta(minutes=10))

    sign_in(page, server)
    page.get_by_role("navigation").get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    queue = page.locator("#queue")
    expect(queue.locator("dd").nth(0)).to_have_text("1")
    expect(queue.locator("dd").nth(1)).to_have_text(re.compile(r"^1\d min ago$"))
    failing = read_table(page.locator("#top-failing table"))
    assert failing == {
        "flaky": {"Failures": "3", "Runs": "3"},
        "chartee": {"Failures": "2", "Runs": "4"},
    }
    shot(page, "console-overview")

    drawn = chart_table(page, "chart-runs")
    zeros = dict.fromkeys(STATUSES, "0")
    assert drawn.pop(label(two_ago)) == {**zeros, "succeeded": "2", "failed": "1"}
    assert drawn.pop(label(one_ago)) == {**zeros, "timed_out": "1", "crashed": "3"}
    # Every other hour of the last 24 is there, empty.
    assert {label(hour - timedelta(hours=h)) for h in range(3, 24)} <= drawn.keys()
    assert all(row == zeros for row in drawn.values())
    shot(page, "console-overview-table")


def test_plugin_page_shows_runs_and_a_slower_new_version(page: Page, server: RunningServer) -> None:
    db, hour = server.service.db, this_hour()
    built = hour - timedelta(hours=4)
    first = add_version(db, "default", "slowing", built_at=built, build_ms=900, failed=False)
    second = add_version(db, "default", "slowing", built_at=built, build_ms=900, failed=False)
    runs = [(first, 100), (first, 200), (first, 300), (second, 1_000), (second, 1_200)]
    for minute, (version, duration) in enumerate(runs):
        add_run(db, version, "default", status=S.SUCCEEDED, duration_ms=duration, latency_ms=3,
                finished_at=hour - timedelta(hours=1) + timedelta(minutes=minute))  # fmt: skip

    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/plugins/slowing")
    expect(page.get_by_role("heading", name="slowing")).to_be_visible()
    # p50 and p95 by linear interpolation: 100, 200, 300 -> 200 and 290; 1000, 1200 ->
    # 1100 and 1190.
    assert chart_table(page, "chart-versions") == {
        "v1": {"p50 (ms)": "200", "p95 (ms)": "290"},
        "v2": {"p50 (ms)": "1100", "p95 (ms)": "1190"},
    }
    by_status = chart_table(page, "chart-plugin-runs")
    assert by_status[label(hour - timedelta(hours=1))]["succeeded"] == "5"
    assert sum(int(row["succeeded"]) for row in by_status.values()) == 5
    shot(page, "console-plugin-charts")


def test_the_operator_switches_tenant_and_sees_only_its_plugins(
    page: Page, server: RunningServer
) -> None:
    for tenant in ("north", "south"):
        create_tenant(server, tenant)
        add_version(server.service.db, tenant, f"{tenant}-plugin", built_at=this_hour(),
                    build_ms=500, failed=False)  # fmt: skip
    sign_in(page, server)
    picker = page.get_by_role("combobox", name="Tenant")
    expect(picker).to_have_value("default")
    picker.select_option("north")
    plugins = page.locator("main")
    expect(plugins.get_by_role("link", name="north-plugin")).to_be_visible()
    expect(plugins.get_by_role("link", name="south-plugin")).to_have_count(0)
    expect(plugins.get_by_role("link", name="chartee")).to_have_count(0)
    shot(page, "console-tenant-north")
    picker.select_option("south")
    expect(plugins.get_by_role("link", name="south-plugin")).to_be_visible()
    expect(plugins.get_by_role("link", name="north-plugin")).to_have_count(0)
    # The pick holds across pages: the overview counts south's runs only (none).
    page.get_by_role("navigation").get_by_role("link", name="Overview").click()
    expect(page.locator("#top-failing")).to_contain_text("No failed runs")


def test_the_audit_trail_filtered_by_action(page: Page, server: RunningServer) -> None:
    create_tenant(server, "audit-t")
    first = create_key(server, "audit-t", ["plugins:read"], name="first")
    create_key(server, "audit-t", ["logs:read"], name="second")
    assert server.api.delete(f"/v1/tenants/audit-t/keys/{first['id']}").status_code == 204
    sign_in(page, server)
    page.get_by_role("combobox", name="Tenant").select_option("audit-t")
    page.get_by_role("navigation").get_by_role("link", name="Audit").click()
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(4)  # tenant.create, two key.create, key.revoke
    page.get_by_label("Action").fill("key.revoke")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(first["id"])
    page.get_by_label("Action").fill("key.")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(3)
    page.get_by_label("Action").fill("")
    page.get_by_label("Target").fill(first["id"])
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)  # its creation and its revocation
    shot(page, "console-audit")


def test_a_tenant_admin_creates_a_key_shown_once_and_revokes_it(
    page: Page, server: RunningServer
) -> None:
    create_tenant(server, "keyed")
    admin = create_key(server, "keyed", ["admin", "plugins:read"], name="admin")
    page.goto(f"{server.url}/ui/")
    page.get_by_label("API key").fill(admin["key"])
    page.locator("#signin-tenant").fill("keyed")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Plugins")).to_be_visible()
    expect(page.locator("#tenant-picker")).to_be_hidden()  # not the operator
    page.get_by_role("navigation").get_by_role("link", name="Keys").click()
    expect(page.get_by_role("heading", name="API keys of keyed")).to_be_visible()
    page.get_by_label("Name").fill("ci-reader")
    page.get_by_label("plugins:read").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-value").inner_text()
    assert secret.startswith("pe_key_")
    expect(page.locator("#new-key")).to_contain_text("shown this once")
    shot(page, "console-key-created")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/plugins", headers=auth).status_code == 200
        # Away and back: the list names the key, the key itself is gone for good.
        page.get_by_role("navigation").get_by_role("link", name="Plugins").click()
        page.get_by_role("navigation").get_by_role("link", name="Keys").click()
        row = page.locator("#keys tbody tr").filter(has_text="ci-reader")
        expect(row).to_contain_text("active")
        assert secret not in page.content()
        row.get_by_role("button", name="Revoke key ci-reader").click()
        expect(row).to_contain_text("revoked")
        assert client.get("/v1/plugins", headers=auth).status_code == 401


def fits_the_screen(page: Page, name: str) -> None:
    """The page body does not scroll sideways (wide tables scroll in their own box)."""
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")
    assert max(widths) <= PHONE["width"], (name, widths)
    shot(page, f"phone-{name}")


def test_every_page_fits_a_375_px_screen(browser: Browser, server: RunningServer) -> None:  # noqa: F811
    db = server.service.db
    phone = add_version(db, "default", "phone", built_at=this_hour(), build_ms=1, failed=False)
    run = add_run(db, phone, "default", status=S.FAILED, finished_at=this_hour(), duration_ms=9,
                  latency_ms=2, gateway_statuses=(502,))  # fmt: skip
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/ui/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        fits_the_screen(page, "signin")
        sign_in(page, server)
        for name, path in [
            ("plugins", "#/plugins"),
            ("overview", "#/overview"),
            ("plugin", "#/plugins/phone"),
            ("run", f"#/runs/{run.id}"),
            ("build", "#/plugins/phone/versions/1/build"),
            ("audit", "#/audit"),
            ("keys", "#/keys"),
        ]:
            page.goto(f"{server.url}/ui/{path}")
            expect(page.locator("main h1")).to_be_visible()
            if name in ("overview", "plugin"):
                expect(page.locator(".chart .plot canvas").first).to_be_visible()
                page.locator(".chart").first.get_by_role("button", name="Show table").click()
            if name == "run":
                expect(page.locator("#run-facts")).to_contain_text("failed")
                expect(page.get_by_role("row").filter(has_text="502")).to_be_visible()
            fits_the_screen(page, name)
    finally:
        context.close()


def test_a_page_loading_slowly_does_not_cover_the_page_navigated_to_since(
    page: Page, server: RunningServer
) -> None:
    """Picking a tenant reloads the plugins list; going to the audit page before it answers
    must leave the audit page on screen when the late list arrives (it used to cover it)."""
    create_tenant(server, "slow-t")
    sign_in(page, server)
    held: list[Route] = []
    page.route(re.compile(r".*/v1/plugins(\?.*)?$"), lambda route: held.append(route))
    with page.expect_request(lambda r: r.url.endswith("/v1/plugins")):
        page.get_by_role("combobox", name="Tenant").select_option("slow-t")
    page.get_by_role("navigation").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page.locator("#audit tbody tr")).to_have_count(1)  # tenant.create
    with page.expect_event("requestfinished"):
        held[0].continue_()
    # Past the late answer's handling: a task queued after it has run.
    page.evaluate("() => new Promise((done) => setTimeout(done, 0))")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    assert page.locator("main h1").all_inner_texts() == ["Audit trail"]
