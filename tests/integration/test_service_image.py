"""The executor service image (deploy/Dockerfile) builds, and a container of it with the
Docker socket mounted answers /readyz; the same image serves the reference platform."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from docker.models.containers import Container

from tests.conftest import free_port
from tests.integration.service_image import service_image as shared_service_image

SOCKET = "/var/run/docker.sock"
ROOTFS = "plugin-executor-rootfs:bookworm"  # the base where no registry answers
KEY = "pe_op_" + "s" * 32


@pytest.fixture(scope="module")
def service_image(docker_client: docker.DockerClient) -> str:
    """This checkout's image, shared with the compose test (built once per run)."""
    return shared_service_image(docker_client, ROOTFS)


def wait_ok(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200 in {timeout} s"
        time.sleep(0.5)


@contextlib.contextmanager
def container(client: docker.DockerClient, image: str, **kwargs: Any) -> Iterator[Container]:
    started = client.containers.run(image, detach=True, **kwargs)
    try:
        yield started
    finally:
        started.remove(force=True)


def test_service_answers_readyz_with_the_docker_socket(
    docker_client: docker.DockerClient, service_image: str
) -> None:
    port = free_port()
    with container(
        docker_client,
        service_image,
        volumes={SOCKET: {"bind": SOCKET, "mode": "rw"}},
        group_add=[str(os.stat(SOCKET).st_gid)],
        environment={"EXECUTOR_OPERATOR_KEY": KEY},
        ports={"8700/tcp": ("127.0.0.1", port)},
    ) as running:
        ready = wait_ok(f"http://127.0.0.1:{port}/readyz")
        assert ready.json() == {"ready": True, "store": True, "docker": True}
        plugins = httpx.get(
            f"http://127.0.0.1:{port}/v1/plugins", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert plugins.status_code == 200, plugins.text
        assert httpx.get(f"http://127.0.0.1:{port}/v1/plugins").status_code == 401
        running.reload()
        assert running.attrs["Config"]["User"] == "10001:10001"


def test_service_without_the_docker_socket_stops_with_a_clear_error(
    docker_client: docker.DockerClient, service_image: str
) -> None:
    with container(
        docker_client, service_image, environment={"EXECUTOR_OPERATOR_KEY": KEY}
    ) as running:
        result = running.wait(timeout=120)
        # Normalised whitespace: the traceback is wrapped at the terminal width.
        logs = " ".join(running.logs().decode().split())
        assert result["StatusCode"] == 1, logs
        assert "Docker Engine error while connecting" in logs
        assert "Check that dockerd is running" in logs
        assert KEY not in logs


def test_same_image_serves_the_reference_platform(
    docker_client: docker.DockerClient, service_image: str
) -> None:
    port = free_port()
    with container(
        docker_client,
        service_image,
        entrypoint=["python3", "-m", "examples.labeling_platform"],
        environment={
            "PLATFORM_HOST": "0.0.0.0",
            "PLATFORM_DATABASE_PATH": "/var/lib/plugin-executor/platform.db",
            "PLATFORM_ADMIN_KEY": "admin-key-0123456789",
            "PLATFORM_SERVICE_KEY": "service-key-0123456789",
        },
        ports={"9000/tcp": ("127.0.0.1", port)},
    ):
        wait_ok(f"http://127.0.0.1:{port}/healthz")
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/users",
            json={"email": "a@b.c"},
            headers={"X-API-Key": "admin-key-0123456789"},
        )
        assert response.status_code == 201, response.text
