"""The Docker Engine's client: the only module of the executor that imports docker-py.

docker-py and requests errors are turned into ``SandboxError`` here, where they enter. The
client connects on first use, so everything that holds an ``Engine`` can be built without
a daemon.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import select
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests
import requests.exceptions
from docker.utils.socket import frames_iter

from executor.engine.base import (
    MANAGED_LABEL,
    NODE_LABEL,
    Attachment,
    EngineInfo,
    EngineRefused,
    Frames,
    ImageMissing,
    StopRecord,
)
from executor.engine.builds import (
    BUILD_MEMORY_SETTING,
    COMMAND_SHOWN_CHARS,
    MIB,
    RUNNING_IN,
    SIGKILL_EXIT,
    STEP_FAILED,
    VANISHED_PARENT,
    BuildAbort,
    BuildInterrupted,
    BuildTimedOut,
    ParentVanished,
    StepFailed,
    once_more_if_a_parent_vanished,
)
from executor.errors import BuildFailed, SandboxError

__all__ = ["ENGINE_TIMEOUT_S", "Engine", "close_attached", "engine_errors"]

log = logging.getLogger(__name__)

ENGINE_TIMEOUT_S = 120
CONFLICT = 409
# A frame of the engine's multiplexed output stream: stream id, 3 zero bytes, payload length.
FRAME_HEADER = struct.Struct(">BxxxL")

# How long past a container's end the engine may take to record it (its ``die`` event).
DIE_RECORD_GRACE_S = 10


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Map Docker Engine failures met while ``doing`` something to ``SandboxError``."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxError(
            f"Docker Engine error while {doing}: {exc}. Check that dockerd is running."
        ) from exc


def _signal_number(value: object) -> int:
    """A ``kill`` event's signal attribute as a number (0 when it names none)."""
    try:
        return int(str(value))
    except ValueError:
        return 0


@contextmanager
def _registry_refusals(doing: str) -> Iterator[None]:
    """Like ``engine_errors``, but the engine's refusals become ``EngineRefused``."""
    with engine_errors(doing):
        try:
            yield
        except docker.errors.NotFound as exc:
            cause = str(exc.explanation)
            raise EngineRefused(f"{doing}: {cause}", cause, not_found=True) from exc
        except docker.errors.APIError as exc:
            cause = str(exc.explanation or exc)
            raise EngineRefused(f"{doing}: {cause}", cause, not_found=False) from exc


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


class Engine:
    """A Docker client made once per process and shared by builder, sandbox and dispatcher.

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
        except (docker.errors.DockerException, requests.exceptions.RequestException, SandboxError):
            return False

    def managed_containers(self) -> list[dict[str, object]]:
        """Every container (running or not) that executors of this store started on this
        node (with a node id set)."""
        labels = [f"{MANAGED_LABEL}={self.scope}"]
        if self.node_id:
            labels.append(f"{NODE_LABEL}={self.node_id}")
        with engine_errors("listing containers"):
            return list(self.api.containers(all=True, filters={"label": labels}))

    def remove_container(self, container_id: str) -> None:
        """Force-remove a container and its anonymous volumes; gone already, or being
        removed by someone else (another executor's crash recovery), is fine."""
        try:
            self.api.remove_container(container_id, force=True, v=True)
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

    def output_frames(self, container_id: str, *, follow: bool) -> Frames:
        """The engine's copy of a container's output (its log driver) from the start, as
        ``(stream id, bytes)`` frames; with ``follow``, until the container stops. Close
        the generator to stop early."""
        url = f"{self.api.base_url}/v{self.api.api_version}/containers/{container_id}/logs"
        params = {"stdout": 1, "stderr": 1, "follow": int(follow)}
        with engine_errors("reading the container's output back from the engine"):
            # No read timeout: a quiet plugin may print nothing for its whole wall time.
            response = self.api.get(url, params=params, stream=True, timeout=None)
            response.raise_for_status()
        return self._frames(response)

    @staticmethod
    def _frames(response: requests.Response) -> Frames:
        try:
            with engine_errors("reading the container's output back from the engine"):
                while header := response.raw.read(FRAME_HEADER.size):
                    stream_id, length = FRAME_HEADER.unpack(header)
                    yield stream_id, response.raw.read(length)
        finally:
            response.close()

    def output_size_reaches(self, container_id: str, size: int) -> bool:
        """True when the engine holds at least ``size`` bytes of a container's output."""
        held = 0
        frames = self.output_frames(container_id, follow=False)
        try:
            for _, data in frames:
                held += len(data)
                if held >= size:
                    return True
        finally:
            frames.close()
        return False

    def stop_record(
        self, container_id: str, started_at: datetime, finished_at: datetime
    ) -> StopRecord:
        """The engine's own record of who ended a container that has exited: its events
        from the container's start to its ``die``.

        A ``kill`` event is logged while the engine holds the container, before it can log
        the ``die``: every signal the engine sent comes before the end. The engine keeps its
        last 256 events in memory only: after a restart of the engine the ``die`` is not
        found (read right after the end, it is among them otherwise).
        Nothing inside the container can add to or remove from this record.
        """
        since = math.floor(started_at.timestamp()) - 1
        until = math.ceil(finished_at.timestamp()) + DIE_RECORD_GRACE_S
        signals: list[int] = []
        with engine_errors("reading the engine's events of a container"):
            events = self.api.events(
                since=since,
                until=until,
                filters={"type": "container", "container": container_id},
                decode=True,
            )
            try:
                for event in events:
                    action = event.get("Action") or event.get("status")
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    if action == "kill":
                        signals.append(_signal_number(attributes.get("signal")))
                    elif action == "die":
                        return StopRecord(True, tuple(signals))
            finally:
                events.close()
        return StopRecord(False)

    def kill_container(self, container_id: str) -> None:
        """SIGKILL a container; already stopped or gone is fine. Called from watchdog and
        stopper threads, with nobody to raise to: an engine that cannot be reached is
        logged, and the container's end (or the engine error that follows) decides."""
        try:
            self.api.kill(container_id, signal="SIGKILL")
        except docker.errors.APIError:
            pass  # already stopped is fine
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not kill container %s: %s", container_id, exc)
        except SandboxError as exc:  # could not connect
            log.warning("could not kill container %s: %s", container_id, exc.message)

    def create_container(
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
        with engine_errors("creating the plugin container"):
            config = self.api.create_host_config(**host_config)
            try:
                created = self.api.create_container(
                    image,
                    entrypoint=command,
                    stdin_open=True,  # docker-py also sets StdinOnce: EOF closes stdin
                    user=user,
                    labels=self.labels(**labels),
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
            return _DockerAttachment(self.api.attach_socket(container_id, params=params))

    def start_container(self, container_id: str) -> None:
        with engine_errors("starting the plugin container"):
            self.api.start(container_id)

    def container_state(self, container_id: str) -> dict[str, Any]:
        """The engine's ``State`` of a container (Running, OOMKilled, StartedAt, ...)."""
        with engine_errors("inspecting the plugin container"):
            return dict(self.api.inspect_container(container_id)["State"])

    def wait_exit(self, container_id: str, timeout_s: float) -> int:
        """Wait for a container to exit; its exit code."""
        with engine_errors("waiting for the plugin container"):
            return int(self.api.wait(container_id, timeout=math.ceil(timeout_s))["StatusCode"])

    def tag_image(self, image: str, repository: str, tag: str) -> None:
        with engine_errors("tagging the image for the registry"):
            self.api.tag(image, repository, tag)

    def push_image(
        self, repository: str, tag: str, auth: dict[str, str] | None
    ) -> Iterator[dict[str, Any]]:
        """Push ``repository:tag``: the engine's progress messages. The engine's refusals
        raise ``EngineRefused``."""
        doing = f"pushing {repository}:{tag}"
        with _registry_refusals(doing):
            yield from self.api.push(repository, tag, stream=True, decode=True, auth_config=auth)

    def pull_image(
        self, repository: str, digest: str, auth: dict[str, str] | None
    ) -> Iterator[dict[str, Any]]:
        """Pull ``repository@digest``: the engine's progress messages. The engine's refusals
        raise ``EngineRefused``."""
        with _registry_refusals(f"pulling {repository}@{digest}"):
            yield from self.api.pull(
                repository, tag=digest, stream=True, decode=True, auth_config=auth
            )

    def build_image(
        self,
        context: bytes,
        *,
        tag: str,
        on_output: Callable[[str], None],
        timeout_s: float,
        stop: threading.Event,
        **options: Any,
    ) -> str:
        """Build ``context`` (a tar with a Dockerfile) as ``tag``; returns the image id.

        Output lines go to ``on_output`` as they come. Past ``timeout_s`` the build is
        stopped and ``BuildTimedOut`` raised; when ``stop`` is set (shutdown) it is stopped
        and ``BuildInterrupted`` raised; an error step raises ``BuildFailed``. ``options``
        are docker-py ``build`` arguments (labels, network_mode, container_limits, ...).
        """
        abort = BuildAbort()
        api = self.api
        api.hooks["response"].append(abort.capture)
        watchdog = threading.Timer(timeout_s, abort.abort, ("timeout",))
        stopper = threading.Thread(target=abort.watch, args=(stop,), daemon=True)
        watchdog.daemon = True
        watchdog.start()
        stopper.start()
        started = time.time()
        try:
            once_more_if_a_parent_vanished(
                functools.partial(self._stream_build, api, context, tag, on_output, abort, options),
                on_output,
            )
        except StepFailed as failed:
            raise self._step_failure(failed, started, options) from None
        except BuildFailed:
            raise
        except Exception as exc:
            # After an abort, the broken stream's error is expected; before, it is the engine's.
            if abort.why is None:
                raise SandboxError(
                    f"Docker Engine error while building the plugin image: {exc}. "
                    "Check that dockerd is running."
                ) from exc
        finally:
            watchdog.cancel()
            abort.finish()
            api.hooks["response"].remove(abort.capture)
            abort.release()
        if abort.why == "timeout":
            raise BuildTimedOut(
                f"the build ran past its wall time of {timeout_s:g} s and was stopped: trim "
                "requirements.txt, or ask the operator to raise EXECUTOR_BUILD_TIMEOUT_S"
            )
        if abort.why == "stop":
            raise BuildInterrupted()
        with engine_errors("reading the built image"):
            return str(self.api.inspect_image(tag)["Id"])  # type: ignore[no-untyped-call]

    @staticmethod
    def _stream_build(
        api: docker.APIClient,
        context: bytes,
        tag: str,
        on_output: Callable[[str], None],
        abort: BuildAbort,
        options: dict[str, Any],
    ) -> None:
        stream = api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            timeout=None,  # the watchdog bounds the build, not a read timeout
            use_config_proxy=False,
            **options,
        )
        step: str | None = None  # the container of the step running now
        for chunk in stream:
            if abort.why is not None:
                return
            if "stream" in chunk:
                on_output(str(chunk["stream"]))
                running = RUNNING_IN.search(str(chunk["stream"]))
                step = running[1] if running else step
            if "error" in chunk:
                error = str(chunk["error"]).strip()
                if VANISHED_PARENT.search(error):
                    raise ParentVanished(error)
                raise StepFailed(error, step)

    def _step_failure(
        self, failed: StepFailed, since: float, options: dict[str, Any]
    ) -> BuildFailed:
        """A failed step's error, naming the build's memory limit when the engine recorded
        an OOM kill in the step's container (or the step was SIGKILLed, as the OOM killer
        does): the engine's own error says only "returned a non-zero code"."""
        step = STEP_FAILED.search(failed.error)
        memory = options.get("container_limits", {}).get("memory")
        if step is None or memory is None:
            return failed
        command, code = step[1], int(step[2])
        oom = self._oom_killed(failed.container, since)
        if not oom and code != SIGKILL_EXIT:
            return failed
        doing = "pip install" if "pip install" in command else command[:COMMAND_SHOWN_CHARS]
        limit = f"memory limit of {memory // MIB} MiB ({BUILD_MEMORY_SETTING})"
        what = (
            f"the build step ran out of memory: its {limit} was exceeded while running "
            f"{doing} (exit {code})"
            if oom
            else f"the build step was killed (exit {code}) while running {doing}, most likely "
            f"at its {limit}"
        )
        return BuildFailed(
            f"{what}: trim requirements.txt, or ask the operator to raise {BUILD_MEMORY_SETTING}"
        )

    def _oom_killed(self, container: str | None, since: float) -> bool:
        """Whether the engine recorded an OOM kill in ``container`` (an id or its short
        form) since ``since`` (epoch seconds)."""
        if container is None:
            return False
        try:
            events = self.api.events(
                since=int(since),
                until=int(time.time()) + 1,
                decode=True,
                filters={"type": "container", "event": "oom"},
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False  # the engine's own error stands
        try:  # a stream on the engine's socket: closed whether or not it was read to its end
            return any(str(event.get("id", "")).startswith(container) for event in events)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        finally:
            events.close()

    def read_file(
        self, image: str, path: str, labels: dict[str, str], max_bytes: int | None = None
    ) -> bytes | None:
        """The content of the regular file ``path`` in ``image`` (None if absent, or larger
        than ``max_bytes``: then it is not read), read from a created, never started,
        container."""
        with engine_errors("reading a file from an image"):
            created = self.api.create_container(image, labels=labels, network_disabled=True)
        container_id = str(created["Id"])
        try:
            with engine_errors("reading a file from an image"):
                stream, stat = self.api.get_archive(container_id, path)
                if max_bytes is not None and int((stat or {}).get("size", 0)) > max_bytes:
                    for _ in stream:  # read to its end, kept nowhere: frees the connection
                        pass
                    return None
                data = b"".join(stream)
        except docker.errors.NotFound:
            return None
        finally:
            self.remove_container(container_id)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read() if extracted is not None else None

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
        with engine_errors("starting a check container"):
            created = self.api.create_container(
                image,
                entrypoint=command,
                user=user,
                labels=labels,
                host_config=self.api.create_host_config(**host_config),
                network_disabled=True,
            )
        container_id = str(created["Id"])
        try:
            with engine_errors("running a check container"):
                self.api.start(container_id)
                exit_code = self._wait(container_id, timeout_s)
                output = self.api.logs(container_id, stdout=True, stderr=True)
            return exit_code, bytes(output)
        finally:
            self.remove_container(container_id)

    def _wait(self, container_id: str, timeout_s: float) -> int | None:
        try:
            result = self.api.wait(container_id, timeout=math.ceil(timeout_s))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            with contextlib.suppress(docker.errors.APIError):  # it may have ended just now
                self.api.kill(container_id)
            self.api.wait(container_id)
            return None
        return int(result["StatusCode"])

    def remove_image(self, image: str) -> bool:
        """Remove an image by tag or id; True if removed, False if already gone or in use
        by a container (the engine refuses; GC tries again later)."""
        try:
            with engine_errors("removing an image"):
                self.api.remove_image(image)
        except docker.errors.NotFound:
            return False
        except SandboxError:
            return False
        return True

    def image_labels(self, image: str) -> dict[str, str] | None:
        """The labels of ``image``; None when there is no such image."""
        with engine_errors("inspecting an image"):
            try:
                info = self.api.inspect_image(image)  # type: ignore[no-untyped-call]
            except docker.errors.NotFound:  # before engine_errors maps it to SandboxError
                return None
        return dict(info["Config"].get("Labels") or {})

    def image_exists(self, image: str) -> bool:
        with engine_errors("inspecting an image"):
            try:
                self.api.inspect_image(image)  # type: ignore[no-untyped-call]
            except docker.errors.NotFound:  # inside: engine_errors would map it first
                return False
        return True

    def close(self) -> None:
        with self._connecting:
            if self._client is not None:
                self._client.close()
