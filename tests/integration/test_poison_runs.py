"""No poison run loops (issue 13, item 1c), on a real in-process executor: an exception in
the executor while it runs an invocation ends it ``crashed``, and a lease that expires at
the last allowed attempt ends the invocation ``dead`` instead of queueing it again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from executor.schemas.events import EventIn
from executor.statuses import InvocationStatus
from executor.store import gateway as gateway_store
from executor.store import outcomes as outcome_store
from executor.store.tables import Event, Invocation, InvocationToken, Plugin, PluginVersion, utcnow
from executor.tenancy.access import operator_caller
from executor.tokens import hash_token, mint_token
from tests.conftest import RunningServer, ServerFactory

MAX_ATTEMPTS = 2
LEASE_EXPIRED = "lease expired: the executor running it stopped"
LOST_OWNER = "gone-host:1:dead"  # the executor that died holding a lease
LOST_GENERATION = 0  # the lease generation it held (a new row's)


@pytest.fixture(scope="module")
def executor(server_factory: ServerFactory) -> RunningServer:
    """An executor that gives an invocation two attempts and renews leases often."""
    server: RunningServer = server_factory(
        retry_max_attempts=MAX_ATTEMPTS, retry_base_s=0.2, retry_max_s=0.5, lease_s=1.5
    )
    server.push("counter")  # logs "ran <asset>" each time its handler runs
    return server


def plugin_runs(server: RunningServer, run_id: str) -> int:
    return sum(r["content"].startswith("ran ") for r in server.logs(run_id=run_id))


def live_tokens(server: RunningServer, run_id: str) -> list[str]:
    with server.service.db.session() as session:
        query = select(InvocationToken.token_sha256).where(
            InvocationToken.invocation_id == run_id, InvocationToken.revoked_at.is_(None)
        )
        return list(session.scalars(query))


def stored_directly(server: RunningServer, project: str, label: dict[str, Any]) -> str:
    """Store an event as ingest does, without the HTTP checks: the one invocation's id."""
    server.activate("counter", project)
    event = EventIn(type="onSubmit", project_id=project, asset_id="a", label=label)
    (run_id,) = server.service.intake.submit(operator_caller(), event).result().invocation_ids
    return run_id


def deep(levels: int) -> dict[str, Any]:
    label: dict[str, Any] = {}
    for _ in range(levels):
        label = {"a": label}
    return label


@pytest.mark.parametrize(
    ("project", "label"),
    [("poison-surrogate", {"text": "broken \udcff emoji"}), ("poison-deep", deep(300))],
)
def test_an_envelope_that_cannot_be_serialized_ends_crashed_before_the_plugin_runs(
    executor: RunningServer, project: str, label: dict[str, Any]
) -> None:
    run_id = stored_directly(executor, project, label)

    run = executor.wait_run(run_id, timeout=90)

    assert run["status"] == "crashed", run
    assert run["attempt"] == 1 <= MAX_ATTEMPTS
    assert run["error"].startswith("executor error: PydanticSerializationError: "), run
    assert [a["reason"] for a in run["attempts"]] == [run["error"]]
    logs = [(r["log_type"], r["content"]) for r in executor.logs(run_id=run_id)]
    assert logs == [("SYSTEM", f"{run['error']}; the run ends crashed")]  # the plugin: 0 runs
    assert run["gateway_calls"] == [] and live_tokens(executor, run_id) == []


def test_an_executor_error_after_the_plugin_ran_ends_crashed_without_running_it_again(
    executor: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_conclude(*_args: Any) -> None:
        raise RuntimeError("conclude broke\nand this line stays in the server log")

    monkeypatch.setattr(executor.service.dispatcher.runner.outcome, "conclude", broken_conclude)
    run_id = stored_directly(executor, "poison-after", {})

    run = executor.wait_run(run_id, timeout=90)

    assert run["status"] == "crashed", run
    assert run["error"] == "executor error: RuntimeError: conclude broke"
    assert run["attempt"] == 1 and plugin_runs(executor, run_id) == 1
    assert live_tokens(executor, run_id) == []


def orphaned_run(server: RunningServer, project: str, attempt: int) -> tuple[str, str]:
    """A running invocation whose executor died at ``attempt``: its lease expired and its
    token is still live. Returns its id and the token."""
    token = mint_token()
    with server.service.db.session() as session:
        plugin = session.scalars(select(Plugin).where(Plugin.name == "counter")).one()
        version = session.scalars(
            select(PluginVersion).where(PluginVersion.plugin_id == plugin.id)
        ).one()
        event = Event(type="onSubmit", project_id=project, asset_id="a", label={})
        session.add(event)
        session.flush()
        now = utcnow()
        invocation = Invocation(
            event_id=event.id,
            plugin_id=plugin.id,
            version_id=version.id,
            plugin_name=plugin.name,
            version_number=version.number,
            project_id=project,
            event_type=event.type,
            asset_id="a",
            image_id=version.image_id,
            status="running",
            attempt=attempt,
            started_at=now - timedelta(seconds=5),
            lease_owner=LOST_OWNER,
            lease_expires_at=now - timedelta(seconds=1),
        )
        session.add(invocation)
        session.flush()
        gateway_store.add_token(
            session, hash_token(token), invocation.id, project, now + timedelta(minutes=1)
        )
    return invocation.id, token


def test_a_lease_expired_at_the_last_attempt_ends_dead_and_before_it_runs_again(
    executor: RunningServer,
) -> None:
    last, _ = orphaned_run(executor, "orphan-last", attempt=MAX_ATTEMPTS)
    earlier, _ = orphaned_run(executor, "orphan-earlier", attempt=MAX_ATTEMPTS - 1)

    dead = executor.wait_run(last, timeout=90)
    again = executor.wait_run(earlier, timeout=90)

    assert dead["status"] == "dead", dead
    assert dead["attempt"] == MAX_ATTEMPTS
    assert dead["error"] == f"gave up after {MAX_ATTEMPTS} attempts: {LEASE_EXPIRED}"
    assert [(a["attempt"], a["reason"]) for a in dead["attempts"]] == [
        (MAX_ATTEMPTS, LEASE_EXPIRED)
    ]
    assert dead["finished_at"] is not None and live_tokens(executor, last) == []
    assert plugin_runs(executor, last) == 0
    with executor.service.db.session() as session:  # the executor that lost it wakes up
        assert not outcome_store.finish(
            session, last, LOST_GENERATION, status=InvocationStatus.SUCCEEDED
        )
    assert again["status"] == "succeeded", again
    assert again["attempt"] == MAX_ATTEMPTS
    assert [a["reason"] for a in again["attempts"]] == [LEASE_EXPIRED]
    assert plugin_runs(executor, earlier) == 1 and live_tokens(executor, earlier) == []
