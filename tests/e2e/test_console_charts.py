"""The console's charts show failures and take a time range (Debian's Chromium, Playwright):
runs by status are stacked bars with failures on top, the overview charts duration, start
latency, platform API errors and builds from GET /v1/stats, durations from 0, and the range
picker asks for 1 h, 24 h, 7 d or a custom range. Values are read back through each chart's
table toggle; the stacking from the canvas's pixels. Screenshots at 1280 and 375 px."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from executor.statuses import InvocationStatus
from tests.conftest import RunningServer
from tests.e2e.test_console import browser, sign_in  # noqa: F401 (a fixture)
from tests.e2e.test_console_operator import (
    PHONE,
    SCREENSHOTS,
    chart_table,
    label,
    shot,
    this_hour,
)
from tests.stats_seed import add_run, add_version

expect.set_options(timeout=60_000)

S = InvocationStatus
FAILED_RGB = (0xDC, 0x26, 0x26)
SUCCEEDED_RGB = (0x05, 0x96, 0x69)
# Rows of the pixels of one colour in a chart's canvas: [count, topmost y, lowest y].
PIXEL_ROWS = """([id, rgb]) => {
  const canvas = document.querySelector(`#${id} canvas`);
  const { width, height } = canvas;
  const { data } = canvas.getContext("2d").getImageData(0, 0, width, height);
  let count = 0, top = height, bottom = -1;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] === rgb[0] && data[i + 1] === rgb[1] && data[i + 2] === rgb[2]) {
      const y = Math.floor(i / 4 / width);
      count += 1; top = Math.min(top, y); bottom = Math.max(bottom, y);
    }
  }
  return [count, top, bottom];
}"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811 (browser is the imported fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    yield page
    context.close()


def pixels(page: Page, chart_id: str, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    count, top, bottom = page.evaluate(PIXEL_ROWS, [chart_id, list(rgb)])
    return count, top, bottom


def test_failures_are_stacked_on_top_of_successes(page: Page, server: RunningServer) -> None:
    """The reported case: 2 failed and 2 succeeded in one hour drew only the green line."""
    db, hour = server.service.db, this_hour()
    version = add_version(db, "default", "stacked", built_at=hour - timedelta(hours=6),
                          build_ms=10, failed=False)  # fmt: skip
    one_ago = hour - timedelta(hours=1)
    for minute, status in enumerate([S.FAILED, S.SUCCEEDED, S.FAILED, S.SUCCEEDED]):
        add_run(db, version, "default", status=status, duration_ms=50, latency_ms=5,
                finished_at=one_ago + timedelta(minutes=minute + 1))  # fmt: skip
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/plugins/stacked")
    drawn = chart_table(page, "chart-plugin-runs")
    assert drawn[label(one_ago)]["failed"] == "2"
    assert drawn[label(one_ago)]["succeeded"] == "2"
    red, green = (pixels(page, "chart-plugin-runs", c) for c in (FAILED_RGB, SUCCEEDED_RGB))
    assert red[0] > 0 and green[0] > 0, (red, green)
    # Two runs each: as tall as each other, the failures' segment on top of the successes'.
    assert red[2] < green[1], (red, green)
    assert abs((red[2] - red[1]) - (green[2] - green[1])) <= 2, (red, green)
    shot(page, "console-plugin-stacked")


def test_the_overview_charts_duration_latency_gateway_errors_and_builds(
    page: Page, server: RunningServer
) -> None:
    db, hour = server.service.db, this_hour()
    three_ago = hour - timedelta(hours=3)
    built = add_version(db, "default", "charted", built_at=three_ago + timedelta(minutes=1),
                        build_ms=800, failed=False)  # fmt: skip
    add_version(db, "default", "charted", built_at=three_ago + timedelta(minutes=2),
                build_ms=300, failed=True)  # fmt: skip
    for minute, (duration, latency, gateway) in enumerate(
        [(100, 10, (200,)), (300, 30, (200, 502)), (500, 50, (404, 200))]
    ):
        add_run(db, built, "default", status=S.SUCCEEDED, duration_ms=duration,
                latency_ms=latency, gateway_statuses=gateway,
                finished_at=three_ago + timedelta(minutes=10 + minute))  # fmt: skip
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/overview")
    row = label(three_ago)
    assert chart_table(page, "chart-duration")[row] == {"p50 (ms)": "300", "p95 (ms)": "480"}
    assert chart_table(page, "chart-latency")[row] == {"p50 (ms)": "30", "p95 (ms)": "48"}
    assert chart_table(page, "chart-gateway")[row] == {"errors": "2", "answered": "3"}
    assert chart_table(page, "chart-builds")[row] == {"failed": "1", "built": "1"}
    for chart in ("chart-duration", "chart-latency"):
        assert page.evaluate(f"document.querySelector('#{chart}').plot.scales.y.min") == 0
    shot(page, "console-overview-charts")
    # The README's picture (docs/img/console-overview.png): the top of the page, 1280 x 900.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "readme-console-overview.png"))


def rows_after_picking(page: Page, kind: str) -> dict[str, dict[str, str]]:
    page.get_by_label("Time range").select_option(kind)
    return chart_table(page, "chart-runs")


def test_the_range_picker_asks_for_1_h_24_h_7_d_or_a_custom_range(
    page: Page, server: RunningServer
) -> None:
    db, now = server.service.db, datetime.now(UTC)
    picked = add_version(db, "default", "ranged", built_at=now - timedelta(days=12),
                         build_ms=10, failed=False)  # fmt: skip
    minute = (now - timedelta(minutes=20)).replace(second=0, microsecond=0)
    days_ago = (now - timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    long_ago = (now - timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    for moment in (minute, days_ago, long_ago):
        add_run(db, picked, "default", status=S.DEAD, duration_ms=5, latency_ms=1,
                finished_at=moment + timedelta(seconds=30))  # fmt: skip
    sign_in(page, server)
    page.goto(f"{server.url}/ui/#/overview")
    expect(page.locator("#range-text")).to_contain_text("by the hour")

    by_minute = rows_after_picking(page, "1h")
    expect(page.locator("#range-text")).to_contain_text("by the minute")
    assert 60 <= len(by_minute) <= 61 and by_minute[label(minute)]["dead"] == "1"
    shot(page, "console-overview-1h")

    week = rows_after_picking(page, "7d")
    expect(page.locator("#range-text")).to_contain_text("by the hour")
    assert 168 <= len(week) <= 169 and week[label(days_ago)]["dead"] == "1"
    assert label(long_ago) not in week

    page.get_by_label("Time range").select_option("custom")
    page.get_by_label("From").fill((long_ago - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("To").fill((long_ago + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#range-text")).to_contain_text("by the minute")
    custom = chart_table(page, "chart-runs")
    assert len(custom) == 180 and custom[label(long_ago)]["dead"] == "1"

    # The pick holds on the next page, and back on this one.
    page.goto(f"{server.url}/ui/#/plugins/ranged")
    expect(page.locator("#range-text")).to_contain_text("by the minute")
    assert chart_table(page, "chart-plugin-runs")[label(long_ago)]["dead"] == "1"
    page.get_by_label("Time range").select_option("24h")
    expect(page.locator("#range-text")).to_contain_text("by the hour")


def test_the_new_charts_fit_a_375_px_screen(browser: Browser, server: RunningServer) -> None:  # noqa: F811
    context = browser.new_context(viewport=PHONE, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server)
        page.goto(f"{server.url}/ui/#/overview")
        for chart in ("chart-runs", "chart-duration", "chart-latency", "chart-gateway",
                      "chart-builds"):  # fmt: skip
            expect(page.locator(f"#{chart} canvas")).to_be_visible()
        page.get_by_label("Time range").select_option("custom")
        expect(page.get_by_label("From")).to_be_visible()
        widths: Any = page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollWidth]"
        )
        assert max(widths) <= PHONE["width"], widths
        shot(page, "phone-overview-charts")
        page.locator("#chart-runs").screenshot(path=str(SCREENSHOTS / "phone-chart-runs.png"))
        page.locator("form.range").screenshot(path=str(SCREENSHOTS / "phone-range.png"))
    finally:
        context.close()
