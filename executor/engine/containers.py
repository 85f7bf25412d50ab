"""The Docker Engine's containers: create, attach, start, wait, kill and remove them, list
this executor's own, and run a one-shot check container to its end."""

from __future__ import annotations

import contextlib
import logging
import math
import select
import socket
from typing import TYPE_CHECKING, Any

import docker.errors
import requests.exceptions
from docker.utils.socket import frames_iter

from executor.engine.base import MANAGED_LABEL, NODE_LABEL, Attachment, Frames, ImageMissing
from executor.engine.docker_errors import CONFLICT, ENGINE_FAILURES, engine_errors
from executor.errors import SandboxError

if TYPE_CHECKING:
    from executor.engine.client import Engine

__all__ = ["Containers", "close_attached"]

log = logging.getLogger(__name__)


def close_attached(sock: Any) -> None:
    """Close an attach stream: docker-py's file object and the socket under it (closing
    only the file object leaves the connection open until garbage collection)."""
    raw = getattr(sock, "_sock", None)  # closing the file object forgets it
    with contextlib.suppress(OSError):
        sock.close()
        if raw is not None:
            raw.close()


class _DockerAttachment:
    """An attach socket of the engine (docker-py's file object over a raw socket)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        sock._sock.settimeout(None)  # the watchdog, not a read timeout, bounds the run

    def send(self, data: bytes) -> None:
        raw: socket.socket = self.sock._sock
        try:
            raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            # The plugin may exit without reading stdin; its output still tells what happened.
            pass

    def frames(self) -> Frames:
        try:
            yield from frames_iter(self.sock, tty=False)  # type: ignore[no-untyped-call]
        finally:
            self.close()

    def ended(self) -> bool:
        # The engine closes the attach stream when the container exits: a stream with
        # nothing to read is a live container, without a round trip to the engine.
        return bool(select.select([self.sock._sock], [], [], 0)[0])

    def close(self) -> None:
        close_attached(self.sock)


class Containers:
    """The containers of one ``Engine`` (``engine.containers``): what it creates carries
    the engine's labels (its store and node)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def managed(self) -> list[dict[str, object]]:
        """Every container (running or not) that executors of this store started on this
        node (with a node id set)."""
        labels = [f"{MANAGED_LABEL}={self._engine.scope}"]
        if self._engine.node_id:
            labels.append(f"{NODE_LABEL}={self._engine.node_id}")
        with engine_errors("listing containers"):
            return list(self._engine.api.containers(all=True, filters={"label": labels}))

    def create(
        self,
        image: str,
        *,
        command: list[str],
        user: str,
        labels: dict[str, str],
        host_config: dict[str, Any],
    ) -> str:
        """Create a container of ``image`` (network disabled) whose stdin is open until the
        first EOF, labelled ``labels`` besides this engine's own; its id. ``ImageMissing``
        when the engine has no such image."""
        api = self._engine.api
        self._engine.records.follow_ends()
        with engine_errors("creating the plugin container"):
            config = api.create_host_config(**host_config)
            try:
                created = api.create_container(
                    image,
                    entrypoint=command,
                    stdin_open=True,  # docker-py also sets StdinOnce: EOF closes stdin
                    user=user,
                    labels=self._engine.labels(**labels),
                    host_config=config,
                    network_disabled=True,
                )
            except docker.errors.ImageNotFound as exc:
                raise ImageMissing(f"image {image} is missing: rebuild the plugin version") from exc
        return str(created["Id"])

    def attach(self, container_id: str) -> Attachment:
        """Attach to a created container's stdin, stdout and stderr (before its start:
        nothing it writes is lost)."""
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        with engine_errors("attaching to the plugin container"):
            return _DockerAttachment(self._engine.api.attach_socket(container_id, params=params))

    def start(self, container_id: str) -> None:
        with engine_errors("starting the plugin container"):
            self._engine.api.start(container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        """The engine's ``State`` of a container (Running, OOMKilled, StartedAt, ...)."""
        with engine_errors("inspecting the plugin container"):
            return dict(self._engine.api.inspect_container(container_id)["State"])

    def wait_exit(self, container_id: str, timeout_s: float) -> int:
        """Wait for a container to exit; its exit code."""
        with engine_errors("waiting for the plugin container"):
            result = self._engine.api.wait(container_id, timeout=math.ceil(timeout_s))
        return int(result["StatusCode"])

    def kill(self, container_id: str) -> None:
        """SIGKILL a container; already stopped or gone is fine. Called from watchdog and
        stopper threads, with nobody to raise to: an engine that cannot be reached is
        logged, and the container's end (or the engine error that follows) decides."""
        try:
            self._engine.api.kill(container_id, signal="SIGKILL")
        except docker.errors.APIError:
            pass  # already stopped is fine
        except ENGINE_FAILURES as exc:
            log.warning("could not kill container %s: %s", container_id, exc)
        except SandboxError as exc:  # could not connect
            log.warning("could not kill container %s: %s", container_id, exc.message)

    def remove(self, container_id: str) -> None:
        """Force-remove a container and its anonymous volumes; gone already, or being
        removed by someone else (another executor's crash recovery), is fine."""
        try:
            self._engine.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == CONFLICT and "already in progress" in str(exc):
                return
            with engine_errors("removing a container"):
                raise
        except requests.exceptions.RequestException as exc:
            with engine_errors("removing a container"):
                raise exc

    def run_to_end(
        self,
        image: str,
        *,
        command: list[str],
        user: str,
        host_config: dict[str, Any],
        labels: dict[str, str],
        timeout_s: float,
    ) -> tuple[int | None, bytes]:
        """Run ``command`` in a new container of ``image`` (no stdin, network disabled) and
        remove it; ``(exit code, stdout + stderr)``, the code None when it ran past
        ``timeout_s`` and was killed."""
        api = self._engine.api
        with engine_errors("starting a check container"):
            created = api.create_container(
                image,
                entrypoint=command,
                user=user,
                labels=labels,
                host_config=api.create_host_config(**host_config),
                network_disabled=True,
            )
        container_id = str(created["Id"])
        try:
            with engine_errors("running a check container"):
                api.start(container_id)
                exit_code = self._wait(container_id, timeout_s)
                output = api.logs(container_id, stdout=True, stderr=True)
            return exit_code, bytes(output)
        finally:
            self.remove(container_id)

    def _wait(self, container_id: str, timeout_s: float) -> int | None:
        api = self._engine.api
        try:
            result = api.wait(container_id, timeout=math.ceil(timeout_s))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            with contextlib.suppress(docker.errors.APIError):  # it may have ended just now
                api.kill(container_id)
            api.wait(container_id)
            return None
        return int(result["StatusCode"])
