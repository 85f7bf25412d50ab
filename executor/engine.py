"""The one interface to the Docker Engine: client creation and error mapping.

docker-py and requests errors are turned into ``SandboxError`` here, where they enter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests.exceptions

from executor.errors import SandboxError

__all__ = ["ENGINE_TIMEOUT_S", "INVOCATION_LABEL", "MANAGED_LABEL", "Engine", "engine_errors"]

ENGINE_TIMEOUT_S = 120
# Labels on every container the executor starts: how crash recovery finds them.
MANAGED_LABEL = "io.plugin-executor.managed"
INVOCATION_LABEL = "io.plugin-executor.invocation"


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Map Docker Engine failures met while ``doing`` something to ``SandboxError``."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxError(
            f"Docker Engine error while {doing}: {exc}. Check that dockerd is running."
        ) from exc


class Engine:
    """A Docker client made once per process and shared by builder, sandbox and dispatcher.

    ``scope`` (the store id, set at start) is the value of the managed label on everything
    this executor creates: executors of other stores on the same engine are left alone.
    """

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        with engine_errors("connecting"):
            self.client = client or docker.from_env(timeout=ENGINE_TIMEOUT_S)
        self.api = self.client.api
        self.scope = "unscoped"

    def labels(self, **extra: str) -> dict[str, str]:
        """Labels for a new container or image of this executor's store."""
        return {MANAGED_LABEL: self.scope, **extra}

    def ping(self) -> bool:
        """True when the engine answers."""
        try:
            return bool(self.api.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def managed_containers(self) -> list[dict[str, object]]:
        """Every container (running or not) that executors of this store started."""
        with engine_errors("listing containers"):
            return list(
                self.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}={self.scope}"})
            )

    def remove_container(self, container_id: str) -> None:
        """Force-remove a container and its anonymous volumes; gone already is fine."""
        with engine_errors("removing a container"), contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True, v=True)

    def kill_container(self, container_id: str) -> None:
        """SIGKILL a container; already stopped or gone is fine."""
        with contextlib.suppress(SandboxError), engine_errors("killing a container"):
            self.api.kill(container_id, signal="SIGKILL")

    def close(self) -> None:
        self.client.close()
