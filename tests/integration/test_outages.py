"""Outages are waited out, not counted out (issue 22, item 8), through a real registry that
is stopped and started again: the runs of a version this engine must pull are retried with
backoff for ``EXECUTOR_INFRA_RETRY_BUDGET_S`` from their first infrastructure failure,
however many attempts that takes, while other runs proceed; they succeed once the registry
is back, and end ``dead`` naming the registry and the setting when the budget is spent.
A store error during a run is an infrastructure failure too."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import docker
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from executor.store import outcomes as outcome_store
from executor.store.tables import Invocation
from tests.conftest import RunningServer, ServerFactory
from tests.integration.registry import LocalRegistry

EVENT = {"type": "onSubmit", "label": {}}
OLD_COUNT = 5  # attempts an infrastructure failure used to get before 'dead'
RETRY_MAX_S = 1.0
UNREACHABLE = (
    "the registry cannot be reached: check that it runs and that the Docker Engine's "
    "host can reach it"
)
WAIT_S = 180  # generous: decided on records, never on elapsed time


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[LocalRegistry]:
    local = LocalRegistry(tmp_path_factory.mktemp("registry") / "registry").start()
    yield local
    if local.process is None:  # a test failed while it was stopped
        local.start()
    local.close(docker_client)


def pushed_but_not_here(
    server: RunningServer, docker_client: docker.DockerClient, name: str
) -> str:
    """Push counter as ``name`` and remove its image from the engine (a run must pull it);
    its digest reference."""
    server.push("counter", name=name)
    (version,) = server.api.get(f"/v1/plugins/{name}").json()["versions"]
    digest = str(version["image_digest"])
    docker_client.images.remove(str(docker_client.images.get(digest).id), force=True, noprune=True)
    return digest


def rows(server: RunningServer, ids: list[str]) -> list[Invocation]:
    with server.service.db.session() as session:
        found = session.scalars(select(Invocation).where(Invocation.id.in_(ids)))
        return sorted(found, key=lambda row: ids.index(row.id))


def wait_for(server: RunningServer, ids: list[str], done: Any, what: str) -> list[Invocation]:
    """Poll the invocations' rows until ``done(rows)``; a generous deadline."""
    deadline = time.monotonic() + WAIT_S
    while not done(found := rows(server, ids)):
        assert time.monotonic() < deadline, f"{what}: {[(r.status, r.attempt) for r in found]}"
        time.sleep(0.2)
    return found


def test_runs_wait_out_a_registry_outage_with_backoff_and_succeed_when_it_is_back(
    server_factory: ServerFactory, registry: LocalRegistry, docker_client: docker.DockerClient
) -> None:
    server = server_factory(retry_base_s=0.2, retry_max_s=RETRY_MAX_S, **registry.settings())
    server.push("counter", name="steady")  # its image stays on the engine
    server.activate("steady", "steady")
    digest = pushed_but_not_here(server, docker_client, "waiting")
    registry.stop()
    try:
        server.activate("waiting", "outage")
        ids = [
            server.post_event(project_id="outage", asset_id=f"w{i}", **EVENT)["invocations"][0]
            for i in range(3)
        ]
        # More attempts than a count of 5 allowed, and none of them dead.
        waiting = wait_for(
            server,
            ids,
            lambda found: all(len(r.attempts) > OLD_COUNT or r.finished_at for r in found),
            "runs did not keep retrying",
        )
        # Other runs proceed meanwhile: the waiting ones hold no slot while they back off.
        steady = server.run_event(project_id="steady", asset_id="s", **EVENT)
    finally:
        registry.start()

    assert steady["status"] == "succeeded", steady
    for row in waiting:
        assert row.status in ("queued", "running"), (row.status, row.error)
        assert row.infra_failing_since is not None
        for entry in row.attempts:
            assert entry["kind"] == "infrastructure"
            assert entry["reason"].startswith(f"infrastructure: pulling {digest} at ")
            assert entry["reason"].endswith(UNREACHABLE)
        if row.status == "queued":  # waiting for its backoff, at most the cap
            assert row.not_before is not None
            retried_at = datetime.fromisoformat(row.attempts[-1]["at"])
            assert 0 < (row.not_before - retried_at).total_seconds() <= RETRY_MAX_S
    runs = [server.wait_run(i, timeout=WAIT_S) for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 3, [r["error"] for r in runs]
    for run, row in zip(runs, rows(server, ids), strict=True):
        assert run["attempt"] > OLD_COUNT
        assert [a["attempt"] for a in run["attempts"]] == list(range(1, run["attempt"]))
        assert {a["kind"] for a in run["attempts"]} == {"infrastructure"}
        assert [
            r["content"] for r in server.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"
        ] == [f"ran {run['asset_id']}"]
        assert row.infra_failing_since is not None  # kept: the budget runs from the first


def test_a_run_ends_dead_when_the_infrastructure_retry_budget_is_spent(
    server_factory: ServerFactory, registry: LocalRegistry, docker_client: docker.DockerClient
) -> None:
    server = server_factory(
        retry_base_s=0.2, retry_max_s=0.5, infra_retry_budget_s=2, **registry.settings()
    )
    digest = pushed_but_not_here(server, docker_client, "given-up")
    registry.stop()
    try:
        server.activate("given-up", "spent")
        run = server.run_event(project_id="spent", asset_id="a", **EVENT)
    finally:
        registry.start()

    assert run["status"] == "dead", run
    shape = re.compile(
        r"gave up after (\d+) attempts over (\d+) s of infrastructure failures, the last of "
        rf"the registry: pulling {re.escape(digest)} at {re.escape(registry.address)} failed: "
        rf".+; {re.escape(UNREACHABLE)}; infrastructure failures are retried for "
        r"EXECUTOR_INFRA_RETRY_BUDGET_S \(2 s\) from the first: raise it to wait out longer "
        r"outages"
    )
    matched = shape.fullmatch(run["error"])
    assert matched is not None, run["error"]
    attempts, seconds = int(matched[1]), int(matched[2])
    assert attempts == run["attempt"] == len(run["attempts"]) and seconds >= 2
    assert {a["reason"].partition(digest)[0] for a in run["attempts"]} == {
        "infrastructure: pulling "
    }
    system = [r["content"] for r in server.logs(run_id=run["id"]) if r["log_type"] == "SYSTEM"]
    assert system[-1].endswith("used up the 2 s budget; giving up"), system[-1]
    assert [r for r in server.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"] == []


def store_blip_at_the_first_hand_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails once, as the first attempt records its hand-off."""
    real = outcome_store.begin_hand_off
    failures = [sqlite3.OperationalError("disk I/O error")]

    def blip(*args: Any, **kwargs: Any) -> bool:
        if failures:
            raise OperationalError("UPDATE invocations", {}, failures.pop())
        return real(*args, **kwargs)

    monkeypatch.setattr(outcome_store, "begin_hand_off", blip)


STORE_BLIP = (
    "infrastructure: store error: OperationalError: (sqlite3.OperationalError) disk I/O error"
)


def test_a_store_error_during_a_run_is_retried_as_an_infrastructure_failure(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(retry_base_s=0.2, retry_max_s=0.5)
    server.push("counter", name="stored")
    server.activate("stored", "store-blip")
    store_blip_at_the_first_hand_off(monkeypatch)

    run = server.run_event(project_id="store-blip", asset_id="b", **EVENT)

    assert run["status"] == "succeeded", run["error"]
    assert run["attempt"] == 2
    assert [(a["reason"], a["kind"]) for a in run["attempts"]] == [(STORE_BLIP, "infrastructure")]
    ran = [r["content"] for r in server.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"]
    assert ran == ["ran b"]


def test_attempts_lost_to_infrastructure_do_not_use_up_the_plugins_retries(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(retry_base_s=0.2, retry_max_s=0.5)
    server.push("raising")
    response = server.api.put("/v1/projects/counted/plugins/raising", json={"max_retries": 1})
    assert response.status_code == 200, response.text
    store_blip_at_the_first_hand_off(monkeypatch)

    run = server.run_event(project_id="counted", asset_id="c", **EVENT)

    plugin_failure = "failed: plugin exited with code 1"
    assert run["status"] == "dead" and run["attempt"] == 3, run
    assert [(a["reason"], a["kind"]) for a in run["attempts"]] == [
        (STORE_BLIP, "infrastructure"),
        (plugin_failure, "plugin"),
        (plugin_failure, "plugin"),
    ]
    assert run["error"] == f"gave up after 3 attempts: {plugin_failure}"
