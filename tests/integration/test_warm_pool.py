"""The warm pool on a real executor and engine: single use, same sandbox, follows versions."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from executor.engine import MANAGED_LABEL, POOL_LABEL
from executor.store.tables import Invocation, InvocationToken, Plugin, PluginVersion
from tests.conftest import RunningServer, ServerFactory

# Prints what a run sees of its sandbox; IMPORTED_AT tells how long before the event
# main.py was imported.
PROBE = """
import os, socket, time
IMPORTED_AT = time.monotonic()
print("imported")

class PluginHandler:
    def on_submit(self, label, asset_id):
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
        try:
            open("/probe", "w")
            root = "writable"
        except OSError:
            root = "read-only"
        print("host", socket.gethostname())
        print("uid", os.getuid(), "caps", status["CapEff"].strip(), "root", root)
        print("ifaces", sorted(name for _, name in socket.if_nameindex()))
        print("label", label, "says", {says!r})
        print("imported_before_s", round(time.monotonic() - IMPORTED_AT, 1))
"""


def write_probe(folder: Path, says: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "main.py").write_text(PROBE.format(says=says))
    return folder


def pooled(server: RunningServer) -> list[dict[str, Any]]:
    """This server's warm containers (any state)."""
    found = server.docker_client.api.containers(all=True, filters={"label": POOL_LABEL})
    scope = server.service.engine.scope
    return [c for c in found if c["Labels"].get(MANAGED_LABEL) == scope]


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def ready(server: RunningServer, version_ids: set[str] | None = None) -> list[str]:
    """Ids of running warm containers (of ``version_ids`` when given)."""
    return [
        c["Id"]
        for c in pooled(server)
        if c["State"] == "running"
        and (version_ids is None or c["Labels"][POOL_LABEL] in version_ids)
    ]


def held(server: RunningServer, version_id: str) -> bool:
    """The pool itself holds one ready container of ``version_id``: the engine says a
    container runs a moment before the pool's thread records it as ready, and an event in
    between starts cold."""
    return server.service.dispatcher.pool.counts().get(version_id) == 1


def run_lines(
    server: RunningServer, project: str, label: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    run = server.run_event(type="onSubmit", project_id=project, asset_id="a", label=label)
    assert run["status"] == "succeeded", (run, server.logs(run_id=run["id"]))
    return run, [r["content"] for r in server.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"]


def version_id(server: RunningServer, name: str, number: int) -> str:
    """The store id of a version (the pool label's value)."""
    with server.service.db.session() as session:
        return str(
            session.scalars(
                select(PluginVersion.id)
                .join(Plugin)
                .where(Plugin.name == name, PluginVersion.number == number)
            ).one()
        )


@pytest.fixture(scope="module")
def warm(server_factory: ServerFactory) -> RunningServer:
    return server_factory(warm_pool_size=1)


@pytest.fixture(scope="module")
def cold(server_factory: ServerFactory) -> RunningServer:
    return server_factory(warm_pool_size=0)


def test_pooled_run_behaves_like_a_cold_one(
    warm: RunningServer, cold: RunningServer, tmp_path: Path
) -> None:
    probe = write_probe(tmp_path / "probe", "same")
    for server in (warm, cold):
        server.push(probe)
        server.activate("probe", "p-same")
    wait_for(lambda: len(ready(warm)) == 1, what="a warm container")
    (container_id,) = ready(warm)
    host = warm.docker_client.api.inspect_container(container_id)
    with warm.service.db.session() as session:
        assert session.scalars(select(InvocationToken)).all() == [], "no token before hand-off"
    time.sleep(2.5)

    warm_run, warm_lines = run_lines(warm, "p-same", {"k": 1})
    cold_run, cold_lines = run_lines(cold, "p-same", {"k": 1})

    assert (warm_run["start"], cold_run["start"]) == ("warm", "cold")
    assert warm_run["start_latency_ms"] is not None and warm_run["start_latency_ms"] >= 0
    # Same output but for the container's host name and when main.py was imported.
    assert warm_lines[0] == "imported" and warm_lines[1] == f"host {container_id[:12]}"
    assert warm_lines[2:-1] == cold_lines[2:-1]
    assert warm_lines[2] == "uid 10000 caps 0000000000000000 root read-only"
    assert warm_lines[3] == "ifaces ['lo']"
    imported_before = float(warm_lines[-1].split()[1])
    assert imported_before >= 1.0 and imported_before > float(cold_lines[-1].split()[1])
    config = host["HostConfig"]
    assert config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"]
    assert config["NetworkMode"] == "none" and config["Memory"] == 512 * 1024 * 1024
    # The token was minted at hand-off, after the container had started and waited.
    with warm.service.db.session() as session:
        token = session.scalars(
            select(InvocationToken).where(InvocationToken.invocation_id == warm_run["id"])
        ).one()
        assert token.revoked_at is not None
    started = datetime.fromisoformat(host["State"]["StartedAt"][:26] + "+00:00")
    assert (token.created_at - started).total_seconds() >= 1.0


def test_a_pooled_container_serves_one_event(warm: RunningServer, tmp_path: Path) -> None:
    warm.push(write_probe(tmp_path / "once", "once"))
    warm.activate("once", "p-once")
    hosts = []
    for n in range(3):
        vid = {version_id(warm, "once", 1)}
        wait_for(lambda: len(ready(warm, vid)) == 1, what="a warm container")  # noqa: B023
        wait_for(lambda: held(warm, *vid), what="the pool to hold it")  # noqa: B023
        run, lines = run_lines(warm, "p-once", {"n": n})
        assert run["start"] == "warm"
        hosts.append(lines[1])
    assert len(set(hosts)) == 3, hosts
    served = {h.split()[1] for h in hosts}
    assert not [c for c in pooled(warm) if c["Id"][:12] in served], "served containers stay"


def test_a_new_version_drains_the_old_pool(warm: RunningServer, tmp_path: Path) -> None:
    folder = write_probe(tmp_path / "versioned", "v1")
    warm.push(folder)
    warm.activate("versioned", "p-versions")
    v1 = {version_id(warm, "versioned", 1)}
    wait_for(lambda: len(ready(warm, v1)) == 1, what="a v1 warm container")
    write_probe(folder, "v2")
    warm.push(folder)
    v2 = {version_id(warm, "versioned", 2)}
    wait_for(lambda: not [c for c in pooled(warm) if c["Labels"][POOL_LABEL] in v1], what="drain")
    wait_for(lambda: len(ready(warm, v2)) == 1, what="a v2 warm container")
    wait_for(lambda: held(warm, *v2), what="the pool to hold it")
    run, lines = run_lines(warm, "p-versions", {})
    assert run["start"] == "warm" and run["version"] == 2 and "says v2" in lines[4]


def test_deactivation_and_idleness_empty_the_pool(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(warm_pool_size=1, warm_pool_idle_s=3)
    server.push(write_probe(tmp_path / "idle", "idle"))
    server.activate("idle", "p-idle")
    wait_for(lambda: len(ready(server)) == 1, what="a warm container")
    wait_for(lambda: not pooled(server), timeout=30, what="idle expiry")
    run, _ = run_lines(server, "p-idle", {})
    assert run["start"] == "cold"  # the first event after idleness starts cold, refills
    wait_for(lambda: len(ready(server)) == 1, what="a refill")
    assert server.api.delete("/v1/projects/p-idle/plugins/idle").status_code == 204
    wait_for(lambda: not pooled(server), what="the pool emptied at deactivation")


def test_the_memory_budget_caps_the_pools(server_factory: ServerFactory, tmp_path: Path) -> None:
    # Room for two 512 MiB containers although three plugins each want two.
    server = server_factory(warm_pool_size=2, warm_pool_memory_budget_mib=1024 + 100)
    for name in ("b1", "b2", "b3"):
        server.push(write_probe(tmp_path / name, name))
        server.activate(name, "p-budget")
    wait_for(lambda: len(ready(server)) == 2, what="the pools to fill")
    for _ in range(10):  # and they stay within the budget
        assert len(pooled(server)) <= 2
        time.sleep(0.3)


def test_a_container_waits_no_longer_than_the_wall_time(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    # Import-time code runs while a container waits: it is replaced past the wall time.
    server = server_factory(warm_pool_size=1, sandbox={"timeout_s": 2})
    server.push(write_probe(tmp_path / "aging", "aging"))
    server.activate("aging", "p-aging")
    wait_for(lambda: len(ready(server)) == 1, what="a warm container")
    (first,) = ready(server)
    wait_for(lambda: first not in [c["Id"] for c in pooled(server)], timeout=30, what="expiry")
    wait_for(lambda: len(ready(server)) == 1, what="its replacement")


def created_at(server: RunningServer, container_id: str) -> datetime:
    """When the engine created a container (its clock is the host's, as the executor's)."""
    created = server.docker_client.api.inspect_container(container_id)["Created"]
    whole, _, fraction = created.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}+00:00")


def test_a_taken_containers_replacement_starts_after_the_handler_started(
    warm: RunningServer, tmp_path: Path
) -> None:
    """Starting the replacement (an engine create and start, about a hundred milliseconds
    of CPU) while the event is handed off slowed the very hand-off the pool is for: it
    starts once the plugin's handler has started."""
    warm.push(write_probe(tmp_path / "refill", "refill"))
    warm.activate("refill", "p-refill")
    vid = {version_id(warm, "refill", 1)}
    wait_for(lambda: len(ready(warm, vid)) == 1, what="a warm container")
    (served,) = ready(warm, vid)
    run, _ = run_lines(warm, "p-refill", {"n": 1})
    assert run["start"] == "warm"
    wait_for(lambda: len(ready(warm, vid)) == 1, what="the replacement")
    (replacement,) = ready(warm, vid)
    assert replacement != served
    with warm.service.db.session() as session:
        row = session.get(Invocation, run["id"])
        handler_started = row.handler_started_at if row is not None else None
    assert handler_started is not None
    assert created_at(warm, replacement) >= handler_started
