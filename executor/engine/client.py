"""The Docker Engine's client: the connection to one engine, and what the executor does
with it, in parts (``containers``, ``records``, ``images``).

docker-py is imported only by the real engine's modules (client, containers, records,
images, builds, docker_errors); its and requests' errors are turned into ``SandboxError``
where they enter. The client connects on first use, so everything that holds an
``Engine`` can be built without a daemon.
"""

from __future__ import annotations

import threading

import docker

from executor.engine.base import MANAGED_LABEL, NODE_LABEL, EngineInfo
from executor.engine.containers import Containers
from executor.engine.docker_errors import ENGINE_FAILURES, engine_errors
from executor.engine.images import Images
from executor.engine.records import Records
from executor.errors import SandboxError

__all__ = ["ENGINE_TIMEOUT_S", "Engine"]

ENGINE_TIMEOUT_S = 120


class Engine:
    """A Docker client made once per process and shared by builder, sandbox and dispatcher:
    ``containers``, ``records`` (what the engine recorded of them: output, events) and
    ``images`` are its parts.

    ``scope`` (the store id) is the value of the managed label on everything this executor
    creates: executors of other stores on the same engine are left alone. ``node_id``
    labels it too: another node of the same store on the same engine is left alone as
    well. Both are given to the constructor; a service learns them only at start (the
    store id after its migration, the node id from the engine's own id) and sets them
    once there with ``identify``. The client connects on first use.
    """

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        scope: str = "unscoped",
        node_id: str | None = None,
    ) -> None:
        self._client = client
        self._connecting = threading.Lock()
        self.scope = scope
        self.node_id = node_id
        self.containers = Containers(self)
        self.records = Records(self)
        self.images = Images(self)

    def identify(self, scope: str, node_id: str | None) -> None:
        """Label what this engine creates from now on with ``scope`` and ``node_id``."""
        self.scope, self.node_id = scope, node_id

    @property
    def client(self) -> docker.DockerClient:
        """The docker-py client, connected on first use (``SandboxError`` if it cannot)."""
        client = self._client
        if client is not None:
            return client
        with self._connecting:
            if self._client is None:
                with engine_errors("connecting"):
                    self._client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
            return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def connect(self) -> Engine:
        """Connect now rather than at first use (``SandboxError`` if the engine is down)."""
        _ = self.client
        return self

    @property
    def address(self) -> str:
        """The engine's URL: what tells one engine from another in this process."""
        return str(self.api.base_url)

    def labels(self, **extra: str) -> dict[str, str]:
        """Labels for a new container or image of this executor's store (and node)."""
        node = {NODE_LABEL: self.node_id} if self.node_id else {}
        return {MANAGED_LABEL: self.scope, **node, **extra}

    def info(self) -> EngineInfo:
        """The engine's id, version and registered OCI runtimes."""
        with engine_errors("reading the engine's information"):
            info = self.api.info()
        return EngineInfo(
            str(info.get("ID", "")),
            str(info.get("ServerVersion", "")),
            sorted(str(name) for name in info.get("Runtimes") or {}),
        )

    def ping(self) -> bool:
        """True when the engine answers."""
        try:
            return bool(self.api.ping())
        except (*ENGINE_FAILURES, SandboxError):
            return False

    def close(self) -> None:
        self.records.close()
        with self._connecting:
            if self._client is not None:
                self._client.close()
