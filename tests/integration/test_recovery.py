"""Crash recovery and drain of a real executor process: kill -9, restart, SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy import select

from executor.engine import MANAGED_LABEL, POOL_LABEL
from executor.store.db import Database
from executor.store.tables import DispatchLock, Invocation, LogRecord
from tests.integration.processes import (
    ExecutorProcess,
    built_images,
    executor_process,
    managed_containers,
    remove_images,
    stop_all,
)
from tests.platform_standin import PlatformStandIn, platform_standin


@pytest.fixture
def processes(
    docker_client: docker.DockerClient, runtime_image: str
) -> Iterator[list[ExecutorProcess]]:
    started: list[ExecutorProcess] = []
    yield started
    if not started:
        return
    last = started[-1]
    # Started after every other one, a running last one adopted or removed what they left.
    running = last.process is not None and last.process.poll() is None
    try:
        images = built_images(last) if running else []
    finally:
        stop_all(started)
    if not running:  # a new start adopts or removes what a killed process left
        try:
            images = built_images(last.start())
        finally:
            last.stop()
    remove_images(last.docker_client, images)


@pytest.fixture
def platform() -> Iterator[PlatformStandIn]:
    with platform_standin() as standin:
        yield standin


def held_by(platform: PlatformStandIn) -> dict[str, Any]:
    """Settings of an executor whose runs can wait on ``platform`` (``hold``) as long as
    the test holds them (no upstream timeout ends the call first)."""
    return {
        "platform_api_url": platform.url + "/api/projects/{project_id}",
        "gateway_upstream_timeout_s": 600,
    }


# uvicorn shuts down gracefully on SIGTERM, then re-raises the signal for the exit status.
GRACEFUL_EXITS = (0, -signal.SIGTERM)
SHUTTING_DOWN = b"Waiting for application shutdown."  # uvicorn's line before the drain


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def statuses(process: ExecutorProcess, ids: list[str]) -> list[str]:
    return [process.api.get(f"/v1/invocations/{i}").json()["status"] for i in ids]


ROUNDS = 10  # of the paced plugin: a logger line, a print() line and a raw fd-2 line each


def paced_lines(asset: str) -> tuple[list[str], list[str]]:
    """What the paced plugin writes for ``asset``: its stdout records, its stderr lines."""
    rounds = [(f"{asset} logger {n}", f"{asset} print {n}") for n in range(ROUNDS)]
    stdout = [f"start {asset}", *(line for pair in rounds for line in pair), f"end {asset}"]
    return stdout, [f"{asset} raw {n}" for n in range(ROUNDS)]


def test_kill_9_while_20_invocations_run_or_wait_then_restart_ends_each_exactly_once(
    processes: list[ExecutorProcess], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """Every line each plugin wrote is stored exactly once and in order, those written while
    no executor ran included (read back from the engine's copy of the output)."""
    settings: dict[str, Any] = {"max_concurrent_runs": 4, "lease_s": 3}
    first = executor_process(tmp_path / "data", docker_client, **settings).start()
    processes.append(first)
    first.push("paced")
    first.activate("paced", "crash")
    label = {"rounds": ROUNDS, "pause": 0.1}
    ids = [
        first.post_event(type="onSubmit", project_id="crash", asset_id=f"c{i}", label=label)[
            "invocations"
        ][0]
        for i in range(20)
    ]
    wait_until(
        lambda: sum(r["content"].startswith("start") for r in first.logs(project_id="crash")) >= 3,
        120,
        "three handlers to start",
    )
    first.signal(signal.SIGKILL)
    first.wait_exit(10)
    assert managed_containers(docker_client, set(ids)), "the crash should leave containers"

    second = executor_process(
        tmp_path / "data", docker_client, port=int(first.env["EXECUTOR_PORT"]), **settings
    )
    processes.append(second.start())
    terminal = {"succeeded", "failed", "timed_out", "oom_killed", "crashed", "dead"}
    wait_until(lambda: set(statuses(second, ids)) <= terminal, 240, "every run to end")
    runs = [second.api.get(f"/v1/invocations/{i}").json() for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 20, runs
    assert all(r["finished_at"] for r in runs)
    assert managed_containers(docker_client, set(ids)) == []
    restarted = [r for r in runs if any("executor" in a["reason"] for a in r["attempts"])]
    adopted = [
        r
        for r in runs
        if any(
            "the executor restarted during this run" in line["content"]
            for line in second.logs(run_id=r["id"])
        )
    ]
    assert restarted or adopted  # the crash really hit runs in flight
    for i, run_id in enumerate(ids):
        written = [r for r in second.logs(run_id=run_id) if r["log_type"] != "SYSTEM"]
        stdout, stderr = paced_lines(f"c{i}")
        assert [r["content"] for r in written if r["stream"] != "stderr"] == stdout, run_id
        assert [r["content"] for r in written if r["stream"] == "stderr"] == stderr, run_id


def test_sigterm_drains_a_running_invocation_to_its_end(
    processes: list[ExecutorProcess],
    docker_client: docker.DockerClient,
    tmp_path: Path,
    platform: PlatformStandIn,
) -> None:
    """The run waits on the platform stand-in, released only once the executor began its
    shutdown: the run can end only while the executor drains."""
    to = held_by(platform)
    executor = executor_process(tmp_path / "data", docker_client, drain_timeout_s=60, **to)
    processes.append(executor.start())
    executor.push("interval")
    executor.activate("interval", "drain")
    (run_id,) = executor.post_event(
        type="onSubmit", project_id="drain", asset_id="d", label={"hold": True}
    )["invocations"]
    wait_until(
        lambda: any(r["content"] == "start d" for r in executor.logs(run_id=run_id)), 60, "start"
    )
    executor.signal(signal.SIGTERM)
    assert executor.log_path is not None
    log_path, since = executor.log_path, executor.log_start
    wait_until(lambda: SHUTTING_DOWN in log_path.read_bytes()[since:], 60, "the shutdown")
    platform.release()
    assert executor.wait_exit(60) in GRACEFUL_EXITS
    restarted = executor_process(
        tmp_path / "data", docker_client, port=int(executor.env["EXECUTOR_PORT"]), **to
    )
    processes.append(restarted.start())
    run = restarted.api.get(f"/v1/invocations/{run_id}").json()
    assert run["status"] == "succeeded" and run["attempt"] == 1
    logs = restarted.logs(run_id=run_id)
    assert [r["content"] for r in logs if r["log_type"] != "SYSTEM"] == ["start d", "end d"]


def test_sigterm_past_the_drain_timeout_hands_the_run_back(
    processes: list[ExecutorProcess],
    docker_client: docker.DockerClient,
    tmp_path: Path,
    platform: PlatformStandIn,
) -> None:
    """The run waits on the platform stand-in, released only once the executor's drain
    killed its container."""
    to = held_by(platform)
    executor = executor_process(tmp_path / "data", docker_client, drain_timeout_s=1, **to)
    processes.append(executor.start())
    executor.push("interval")
    executor.activate("interval", "handback")
    (run_id,) = executor.post_event(
        type="onSubmit", project_id="handback", asset_id="h", label={"hold": True}
    )["invocations"]
    wait_until(
        lambda: any(r["content"] == "start h" for r in executor.logs(run_id=run_id)), 60, "start"
    )
    executor.signal(signal.SIGTERM)
    # Released once the drain killed the container: the attempt cannot end by itself, and
    # the executor's exit does not wait for the held call.
    wait_until(
        lambda: managed_containers(docker_client, {run_id}) == [], 60, "the drain to kill it"
    )
    platform.release()
    assert executor.wait_exit(60) in GRACEFUL_EXITS
    assert managed_containers(docker_client, {run_id}) == []
    database = Database(f"sqlite:///{tmp_path / 'data' / 'executor.db'}")
    with database.session() as session:
        # Killed past the drain timeout, not waited for: the attempt never reached its end.
        lines = list(session.scalars(select(LogRecord.content).where(LogRecord.run_id == run_id)))
        assert "start h" in lines and "end h" not in lines
        handed_back = session.get(Invocation, run_id)
        assert handed_back is not None and handed_back.status == "queued"
        assert [a["reason"] for a in handed_back.attempts] == ["handed back at executor shutdown"]
    database.dispose()
    restarted = executor_process(
        tmp_path / "data", docker_client, port=int(executor.env["EXECUTOR_PORT"]), **to
    )
    processes.append(restarted.start())
    run = restarted.wait_run(run_id)
    assert run["status"] == "succeeded" and run["attempt"] == 2


def test_warm_containers_a_killed_executor_left_are_removed_at_the_next_start(
    processes: list[ExecutorProcess], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    first = executor_process(tmp_path / "data", docker_client, warm_pool_size=1)
    processes.append(first.start())
    first.push("counter")
    first.activate("counter", "warm-crash")

    def warm() -> list[str]:
        found = docker_client.api.containers(all=True, filters={"label": POOL_LABEL})
        return [c["Id"] for c in found if c["Labels"].get(MANAGED_LABEL) == scope]

    with Database(f"sqlite:///{tmp_path / 'data' / 'executor.db'}").session() as session:
        lock = session.get(DispatchLock, 1)
        assert lock is not None, "the executor took no dispatch lock"
        scope = lock.store_id
    wait_until(lambda: len(warm()) == 1, 60, "a warm container")
    first.signal(signal.SIGKILL)
    first.wait_exit(10)
    assert len(warm()) == 1, "the crash should leave the warm container"
    second = executor_process(
        tmp_path / "data", docker_client, port=int(first.env["EXECUTOR_PORT"])
    )
    processes.append(second.start())
    assert warm() == []
