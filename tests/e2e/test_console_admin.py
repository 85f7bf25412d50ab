"""A key with the admin scope only signs in to the console and lands on its tenant's keys
(it may not read plugins); without the tenant's name the sign-in says what is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import RunningServer
from tests.e2e.test_console import browser  # noqa: F401 (a fixture)
from tests.integration.tenancy import create_key, create_tenant

expect.set_options(timeout=60_000)  # a page on two loaded cores: no tight deadline


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811 (browser is the imported fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, server: RunningServer, key: str, tenant: str) -> None:
    page.goto(f"{server.url}/")  # the server's address opens the console
    page.get_by_label("API key").fill(key)
    page.locator("#signin-tenant").fill(tenant)
    page.get_by_role("button", name="Sign in").click()


def test_an_admin_only_key_signs_in_to_its_keys(page: Page, server: RunningServer) -> None:
    create_tenant(server, "admins-only")
    admin = create_key(server, "admins-only", ["admin"], name="keeper")
    sign_in(page, server, admin["key"], "")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Sign-in failed: this API key lacks the scope")
    expect(alert).to_contain_text("plugins:read")
    expect(alert).to_contain_text("; an admin key: enter your tenant's name to manage its keys")
    page.locator("#signin-tenant").fill("admins-only")  # the same form, now with the name
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="API keys of admins-only")).to_be_visible()
    expect(page.locator("#keys tbody tr").filter(has_text="keeper")).to_contain_text("active")
    expect(page.locator("#keys thead")).to_contain_text("Last used")
    assert page.url.endswith("#/keys")
