"""A container that cannot start: the start fails with the engine's reason, and leaves
neither the container nor the attach connection behind."""

from __future__ import annotations

import gc
import io
import time
import uuid
import warnings
from collections.abc import Iterator

import docker
import pytest

from executor.engine import INVOCATION_LABEL, Engine
from executor.errors import SandboxError
from executor.run.sandbox import Sandbox
from executor.settings import SandboxProfile


@pytest.fixture(scope="module")
def unstartable_image(docker_client: docker.DockerClient, runtime_image: str) -> Iterator[str]:
    """The runtime image without ``python3``, which the sandbox's init command runs:
    creating and attaching work, ``start`` fails."""
    tag = "plugin-executor-test/unstartable:latest"
    dockerfile = (
        f"FROM {runtime_image}\nUSER root\n"
        "RUN for d in $(echo $PATH | tr : ' '); do rm -f $d/python3; done; ! command -v python3\n"
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def test_a_failed_start_closes_its_attach_connection_and_removes_the_container(
    docker_client: docker.DockerClient, unstartable_image: str
) -> None:
    sandbox = Sandbox(Engine(docker_client), SandboxProfile())
    invocation_id = f"start-fails-{uuid.uuid4()}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            started = sandbox.start(
                unstartable_image, SandboxProfile(), invocation_id=invocation_id
            )
        except SandboxError as exc:
            message = exc.message
        else:
            sandbox.discard(started)
            raise AssertionError("the container started")
        gc.collect()  # an unclosed attach socket would warn when collected
    assert "starting the plugin container" in message and "python3" in message
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    # The engine may still be removing it (auto-remove after the failed start).
    deadline = time.monotonic() + 120
    while docker_client.api.containers(
        all=True, filters={"label": f"{INVOCATION_LABEL}={invocation_id}"}
    ):
        assert time.monotonic() < deadline, "the container that failed to start was kept"
        time.sleep(0.2)
