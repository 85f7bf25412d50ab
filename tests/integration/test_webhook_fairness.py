"""Tenants share webhook deliveries fairly (issue 22, item 6): deliveries run on a pool of
their own, apart from plugin run slots, and one tenant holds at most its share of that pool.
Tenant "slowco" has slow-loris receivers (a byte every 5 s, the answer never ends) on a real
HTTP server on loopback; "quickco" has a quick receiver and a code plugin. Every verdict is
read from records (invocation statuses, the receivers' open connections), never from time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ExecutorApi, RunningServer, ServerFactory
from tests.integration.tenancy import ALL_SCOPES, as_key, assign_project, create_key, create_tenant
from tests.integration.webhook_receiver import Receiver, serve_receiver

pytestmark = pytest.mark.docker

SLOW_PROJECT = "p-slow"
QUICK_PROJECT = "p-quick"
WAIT_S = 180.0  # generous: CI's two cores are loaded


@pytest.fixture
def loris() -> Iterator[Receiver]:
    """Tenant slowco's receivers: ``/loris/<name>`` paths, held until the test ends."""
    with serve_receiver() as serving:
        yield serving


@pytest.fixture
def quick() -> Iterator[Receiver]:
    """Tenant quickco's receiver: ``/ok`` answers 200 at once."""
    with serve_receiver() as serving:
        yield serving


@dataclass
class Tenants:
    slow: ExecutorApi
    quick: ExecutorApi


def start(
    server_factory: ServerFactory, loris: Receiver, quick: Receiver, **settings: Any
) -> RunningServer:
    return server_factory(
        webhook_allowed_hosts=[f"127.0.0.1:{loris.port}", f"127.0.0.1:{quick.port}"],
        # Longer than any test: slowco's deliveries stay held until its receivers let go.
        webhook_timeout_s=3600.0,
        webhook_max_attempts=1,
        # Only the pools and the share limit deliveries here, not these caps.
        max_runs_per_plugin=50,
        max_runs_per_project=50,
        **settings,
    )


@pytest.fixture
def tenants(server_factory: ServerFactory, loris: Receiver, quick: Receiver) -> Iterator[Tenants]:
    # Four plugin run slots; eight webhook slots, of which one tenant may hold four.
    pools = {"max_concurrent_runs": 4, "webhook_pool_size": 8, "webhook_tenant_share": 0.5}
    yield from _tenants(start(server_factory, loris, quick, **pools))


@pytest.fixture
def shared(server_factory: ServerFactory, loris: Receiver, quick: Receiver) -> Iterator[Tenants]:
    # Four webhook slots, of which one tenant may hold two; plugin run slots to spare.
    pools = {"max_concurrent_runs": 8, "webhook_pool_size": 4, "webhook_tenant_share": 0.5}
    yield from _tenants(start(server_factory, loris, quick, **pools))


def _tenants(server: RunningServer) -> Iterator[Tenants]:
    apis = []
    for name, project in (("slowco", SLOW_PROJECT), ("quickco", QUICK_PROJECT)):
        create_tenant(server, name)
        assign_project(server, name, project)
        apis.append(as_key(server, create_key(server, name, ALL_SCOPES)["key"]))
    yield Tenants(*apis)
    for api in apis:
        api.api.close()


def hook(api: ExecutorApi, name: str, url: str, project: str) -> None:
    response = api.api.post("/v1/webhooks", json={"webhook_url": url, "plugin_name": name})
    assert response.status_code == 201, response.text
    api.activate(name, project)


def submit(api: ExecutorApi, project: str) -> list[str]:
    """One onSubmit event to ``project``: the ids of the invocations it made."""
    accepted = api.post_event(type="onSubmit", project_id=project, asset_id="a1", label={})
    return list(accepted["invocations"])


def wait_until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not seen within {WAIT_S:g} s: {what}"
        time.sleep(0.1)


def statuses(api: ExecutorApi, ids: list[str]) -> list[str]:
    return sorted(api.api.get(f"/v1/invocations/{i}").json()["status"] for i in ids)


def slow_deliveries(tenants: Tenants, loris: Receiver, count: int) -> list[str]:
    """``count`` webhooks of slowco to slow-loris receivers, all called by one event."""
    for n in range(count):
        hook(tenants.slow, f"loris-{n}", f"http://127.0.0.1:{loris.port}/loris/{n}", SLOW_PROJECT)
    ids = submit(tenants.slow, SLOW_PROJECT)
    assert len(ids) == count
    return ids


def test_slow_receivers_of_one_tenant_hold_neither_another_tenants_delivery_nor_its_runs(
    tenants: Tenants, loris: Receiver, quick: Receiver
) -> None:
    """slowco's four slow-loris receivers take as many slots as the executor has plugin run
    slots; quickco's delivery and its code plugin's run both end while all four are still
    held."""
    tenants.quick.push("counter")
    tenants.quick.activate("counter", QUICK_PROJECT)
    hook(tenants.quick, "quick-hook", f"http://127.0.0.1:{quick.port}/ok", QUICK_PROJECT)
    slow = slow_deliveries(tenants, loris, 4)
    wait_until("slowco's 4 receivers answering", lambda: loris.open_now("/loris") == 4)

    runs = [tenants.quick.wait_run(i, timeout=WAIT_S) for i in submit(tenants.quick, QUICK_PROJECT)]

    assert sorted((r["plugin"], r["status"]) for r in runs) == [
        ("counter", "succeeded"),
        ("quick-hook", "succeeded"),
    ]
    assert len(quick.hits("/ok")) == 1
    # Read after quickco's ended: slowco's deliveries were held all along.
    assert loris.open_now("/loris") == 4
    assert statuses(tenants.slow, slow) == ["running"] * 4


def test_one_tenant_holds_at_most_its_share_of_the_webhook_pool(
    shared: Tenants, loris: Receiver, quick: Receiver
) -> None:
    """slowco's event calls six slow-loris webhooks: two (its share of a pool of four) are
    delivered, four wait queued; quickco's delivery, queued after all six, goes through."""
    hook(shared.quick, "quick-hook", f"http://127.0.0.1:{quick.port}/ok", QUICK_PROJECT)
    slow = slow_deliveries(shared, loris, 6)
    wait_until("slowco's share answering", lambda: loris.open_now("/loris") >= 2)

    [delivery] = submit(shared.quick, QUICK_PROJECT)
    run = shared.quick.wait_run(delivery, timeout=WAIT_S)

    assert (run["status"], run["http_status"]) == ("succeeded", 200)
    # Claims take the oldest first: had slowco's other four been allowed, they would have
    # been claimed before quickco's delivery.
    assert statuses(shared.slow, slow) == ["queued"] * 4 + ["running"] * 2
    assert loris.peak["/loris"] == 2
    assert loris.open_now("/loris") == 2
