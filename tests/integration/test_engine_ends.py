"""How a container ended is read from the ends the executor followed on the engine's event
stream, not from the engine's last 256 events: on a busy engine, a plugin that exits 143
by itself is its own failure, and a ``docker kill`` a stop from outside, however many
events the engine logged between the end and the read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from executor.engine import Engine
from executor.run.follow import Follower
from executor.settings import SandboxProfile
from executor.statuses import InvocationStatus

PROFILE = SandboxProfile()
# The engine answers a query of past events from its last 256 (of every kind).
ENGINE_EVENTS_KEPT = 256


@pytest.fixture
def engine(docker_client: docker.DockerClient) -> Iterator[Engine]:
    engine = Engine(scope=f"test-engine-ends-{uuid.uuid4()}")
    yield engine
    for container in engine.containers.managed():
        engine.containers.remove(str(container["Id"]))
    engine.close()


def _ended(engine: Engine, runtime_image: str, script: str, signal: str | None = None) -> str:
    container_id = engine.containers.create(
        runtime_image,
        command=["sh", "-c", script],
        user="10000",
        labels={},
        host_config={"network_mode": "none"},
    )
    engine.containers.start(container_id)
    if signal is not None:
        engine.api.kill(container_id, signal=signal)
    engine.containers.wait_exit(container_id, 60)
    return container_id


def _busy(docker_client: docker.DockerClient, runtime_image: str) -> None:
    """Make the engine log more events than it keeps (a tag and an untag each)."""
    tag = str(uuid.uuid4())
    for _ in range(ENGINE_EVENTS_KEPT // 2 + 20):
        docker_client.api.tag(runtime_image, "plugin-executor-test/busy", tag)
        docker_client.api.remove_image(f"plugin-executor-test/busy:{tag}", noprune=True)


def _still_recorded(engine: Engine, container_id: str) -> list[str]:
    """What the engine's last events still hold of the container (what a query reads)."""
    events = engine.api.events(
        since=int(time.time()) - 600,
        until=int(time.time()),
        filters={"type": "container", "container": container_id},
        decode=True,
    )
    try:
        return [str(event.get("Action")) for event in events]
    finally:
        events.close()


def test_a_plugin_exiting_143_on_a_busy_engine_is_its_own_failure(
    engine: Engine, docker_client: docker.DockerClient, runtime_image: str
) -> None:
    container_id = _ended(engine, runtime_image, "exit 143")
    _busy(docker_client, runtime_image)

    outcome = Follower(engine, PROFILE).outcome(container_id, {}, 0.0)

    assert _still_recorded(engine, container_id) == []  # the engine forgot its end
    assert (outcome.status, outcome.exit_code, outcome.infrastructure) == (
        InvocationStatus.FAILED,
        143,
        False,
    ), outcome.error


def test_a_docker_kill_on_a_busy_engine_is_a_stop_from_outside(
    engine: Engine, docker_client: docker.DockerClient, runtime_image: str
) -> None:
    container_id = _ended(engine, runtime_image, "sleep 300", "SIGKILL")
    _busy(docker_client, runtime_image)

    outcome = Follower(engine, PROFILE).outcome(container_id, {}, 0.0)

    assert _still_recorded(engine, container_id) == []
    assert (outcome.status, outcome.exit_code, outcome.infrastructure, outcome.error) == (
        InvocationStatus.CRASHED,
        137,
        True,
        "container stopped from outside the executor (exit 137): the Docker Engine was asked "
        "to send 9 (SIGKILL) (docker stop, docker kill or its shutdown)",
    )
