"""An engine in memory: containers, images and output frames kept in dicts, and plugins
that are scripts (their output frames, then how they end).

In the spirit of procrastinate's ``InMemoryConnector`` and httpx's ``MockTransport``: the
sandbox, the runner and the dispatcher run on it unchanged, with no Docker Engine and no
time spent in containers. It keeps the records the real engine keeps (exit code, OOM kill,
the signals it was asked to send, whether it still holds the end), so the executor's own
decisions are what is tested. A contract test (``tests/integration/test_engine_contract``)
runs the same scripts on the Docker Engine and checks both end the same.

It has the real engine's shape: a ``FakeEngine`` with ``containers``, ``records`` and
``images`` parts. Whatever it does not fake (builds, registries, the docker-py client)
raises ``SandboxError`` naming it, so a test never reaches a real engine by accident.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from executor.engine.base import (
    MANAGED_LABEL,
    NODE_LABEL,
    Attachment,
    EngineInfo,
    Frames,
    ImageMissing,
    StopRecord,
)
from executor.engine.client import Engine
from executor.engine.containers import Containers
from executor.engine.images import Images
from executor.engine.records import Records
from executor.errors import SandboxError

__all__ = ["FakeContainer", "FakeContainers", "FakeEngine", "FakeImages", "Script", "scripted"]

SIGKILL = 9
KILLED_EXIT = 128 + SIGKILL
FAKE_ENGINE_ID = "FAKE:ENGINE:0000:0000"


@dataclass(frozen=True)
class Script:
    """What a fake plugin does once it has its envelope: write ``frames`` (stream id 1 is
    stdout, 2 stderr), then exit with ``exit_code``; or, with ``hangs``, run until killed.

    ``oom_killed``: the engine records an OOM kill (its flag and its ``oom`` event);
    ``oom_event_only``: only the event (the engine handled the OOM after the exit, so its
    ``OOMKilled`` flag stays false). ``stopped_with``: the signals the
    engine records it was asked to send from outside (``docker stop``: 15, ``docker kill``:
    9). ``end_recorded`` False: the engine holds no record of the end (it restarted).
    """

    frames: tuple[tuple[int, bytes], ...] = ()
    exit_code: int = 0
    hangs: bool = False
    oom_killed: bool = False
    oom_event_only: bool = False
    stopped_with: tuple[int, ...] = ()
    end_recorded: bool = True


@dataclass
class FakeContainer:
    """One container as the fake engine holds it."""

    id: str
    image: str
    labels: dict[str, str]
    script: Script
    state: str = "created"  # created, running, exited
    exit_code: int | None = None
    oom_killed: bool = False
    signals: list[int] = field(default_factory=list)
    stdin: bytes | None = None
    output: list[tuple[int, bytes]] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ended: threading.Event = field(default_factory=threading.Event)


class _FakeAttachment:
    """The attached streams of a fake container: the envelope runs its script."""

    def __init__(self, containers: FakeContainers, container: FakeContainer) -> None:
        self.containers = containers
        self.container = container

    def send(self, data: bytes) -> None:
        self.containers._deliver(self.container, data)

    def frames(self) -> Frames:
        yield from self.containers.frames_of(self.container, follow=True)

    def ended(self) -> bool:
        return self.container.ended.is_set()

    def close(self) -> None:
        pass


class FakeEngine(Engine):
    """An ``Engine`` over memory. Register plugins with ``images.add``; make an operation
    fail with ``fail``; read what happened in ``containers.held`` and ``containers.removed``."""

    containers: FakeContainers
    records: FakeRecords
    images: FakeImages

    def __init__(self, *, scope: str = "unscoped", node_id: str | None = None) -> None:
        super().__init__(None, scope=scope, node_id=node_id)
        self._failing: dict[str, int] = {}
        self.lock = threading.Lock()  # the parts' too: one engine, one record of it
        self.containers = FakeContainers(self)
        self.records = FakeRecords(self)
        self.images = FakeImages(self)

    def fail(self, operation: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` (a method: ``info``,
        ``containers.create``, ``containers.attach``, ``records.stop_record``, ...) raise the
        engine error the real one would."""
        self._failing[operation] = self._failing.get(operation, 0) + times

    def maybe_fail(self, operation: str, doing: str) -> None:
        """Raise the engine error for ``doing`` if ``operation`` was told to fail."""
        with self.lock:
            left = self._failing.get(operation, 0)
            if left <= 0:
                return
            self._failing[operation] = left - 1
        raise SandboxError(
            f"Docker Engine error while {doing}: the fake engine was told to fail "
            f"{operation}. Check that dockerd is running."
        )

    @property
    def client(self) -> Any:
        raise SandboxError("the fake engine has no Docker client: this call is not faked")

    @property
    def address(self) -> str:
        return f"fake://{id(self):x}"

    def close(self) -> None:
        pass

    def info(self) -> EngineInfo:
        self.maybe_fail("info", "reading the engine's information")
        return EngineInfo(FAKE_ENGINE_ID, "fake", ["runc", "runsc"])

    def ping(self) -> bool:
        return "ping" not in self._failing


class FakeContainers(Containers):
    """The fake engine's containers (``held``, by id), each running its image's script."""

    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(engine)
        self._fake = engine
        self.held: dict[str, FakeContainer] = {}
        self.removed: list[str] = []
        self._ids = itertools.count(1)

    def kill_from_outside(self, container_id: str, signal: int = SIGKILL) -> None:
        """What ``docker kill`` does: the engine records the signal and the container ends."""
        container = self.held[container_id]
        container.signals.append(signal)
        self._end(container, 128 + signal)

    def managed(self) -> list[dict[str, object]]:
        self._fake.maybe_fail("containers.managed", "listing containers")
        with self._fake.lock:
            found = list(self.held.values())
        scope, node_id = self._fake.scope, self._fake.node_id
        return [
            {"Id": c.id, "Labels": dict(c.labels), "State": c.state}
            for c in found
            if c.labels.get(MANAGED_LABEL) == scope
            and (not node_id or c.labels.get(NODE_LABEL) == node_id)
        ]

    def create(
        self,
        image: str,
        *,
        command: list[str],
        user: str,
        labels: dict[str, str],
        host_config: dict[str, Any],
    ) -> str:
        self._fake.maybe_fail("containers.create", "creating the plugin container")
        script = self._fake.images.next_script(image)
        with self._fake.lock:
            container = FakeContainer(
                f"fake{next(self._ids):060d}", image, self._fake.labels(**labels), script
            )
            self.held[container.id] = container
        return container.id

    def attach(self, container_id: str) -> Attachment:
        self._fake.maybe_fail("containers.attach", "attaching to the plugin container")
        return _FakeAttachment(self, self.get(container_id))

    def start(self, container_id: str) -> None:
        self._fake.maybe_fail("containers.start", "starting the plugin container")
        container = self.get(container_id)
        container.state, container.started_at = "running", datetime.now(UTC)

    def state(self, container_id: str) -> dict[str, Any]:
        self._fake.maybe_fail("containers.state", "inspecting the plugin container")
        c = self.get(container_id)
        return {
            "Running": c.state == "running",
            "OOMKilled": c.oom_killed,
            "ExitCode": c.exit_code or 0,
            "StartedAt": (c.started_at or datetime.now(UTC)).isoformat(),
            "FinishedAt": (c.finished_at or datetime.now(UTC)).isoformat(),
        }

    def wait_exit(self, container_id: str, timeout_s: float) -> int:
        self._fake.maybe_fail("containers.wait_exit", "waiting for the plugin container")
        container = self.get(container_id)
        if not container.ended.wait(timeout_s):
            raise SandboxError(
                "Docker Engine error while waiting for the plugin container: it did not end "
                f"within {timeout_s:g} s. Check that dockerd is running."
            )
        return int(container.exit_code or 0)

    def kill(self, container_id: str) -> None:
        container = self.held.get(container_id)
        if container is not None and container.state == "running":
            container.signals.append(SIGKILL)  # the engine records its own kills too
            self._end(container, KILLED_EXIT)

    def remove(self, container_id: str) -> None:
        self._fake.maybe_fail("containers.remove", "removing a container")
        with self._fake.lock:
            container = self.held.pop(container_id, None)
        if container is not None:
            self._end(container, KILLED_EXIT)  # force-removal kills a running one
            self.removed.append(container_id)

    # The scripts.

    def _deliver(self, container: FakeContainer, envelope: bytes) -> None:
        """The envelope arrives: the plugin writes its frames, then ends as scripted."""
        if container.stdin is not None or container.ended.is_set():
            return
        script = container.script
        container.stdin = envelope
        container.output.extend(script.frames)
        if script.hangs:
            return  # until killed: by the executor's watchdog, or from outside
        container.signals.extend(script.stopped_with)
        container.oom_killed = script.oom_killed
        self._end(container, script.exit_code)

    def _end(self, container: FakeContainer, exit_code: int) -> None:
        with self._fake.lock:
            if container.ended.is_set():
                return
            container.state, container.exit_code = "exited", exit_code
            container.finished_at = datetime.now(UTC)
            container.ended.set()

    def frames_of(self, container: FakeContainer, *, follow: bool) -> Frames:
        """What ``container`` wrote; with ``follow``, once it ended."""
        if follow:
            container.ended.wait()
        yield from list(container.output)

    def get(self, container_id: str) -> FakeContainer:
        """The container ``container_id``; the engine's error if it holds none."""
        with self._fake.lock:
            found = self.held.get(container_id)
        if found is None:
            raise SandboxError(
                f"Docker Engine error while using container {container_id}: no such "
                "container. Check that dockerd is running."
            )
        return found


class FakeRecords(Records):
    """What the fake engine recorded of its containers: their output and how they ended."""

    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(engine)
        self._fake = engine

    def output_frames(self, container_id: str, *, follow: bool) -> Frames:
        self._fake.maybe_fail(
            "records.output_frames", "reading the container's output back from the engine"
        )
        containers = self._fake.containers
        return containers.frames_of(containers.get(container_id), follow=follow)

    def stop_record(
        self, container_id: str, started_at: datetime, finished_at: datetime
    ) -> StopRecord:
        self._fake.maybe_fail("records.stop_record", "reading the engine's events of a container")
        container = self._fake.containers.get(container_id)
        if not container.script.end_recorded:
            return StopRecord(False)
        oom = container.script.oom_killed or container.script.oom_event_only
        return StopRecord(True, tuple(container.signals), oom_killed=oom)


class FakeImages(Images):
    """The fake engine's images: ``held`` maps each to the scripts its containers run in
    turn (the last one from then on) and its labels."""

    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(engine)
        self._fake = engine
        self.held: dict[str, tuple[list[Script], dict[str, str]]] = {}

    def add(self, image: str, *scripts: Script, labels: dict[str, str] | None = None) -> None:
        """Make ``image`` exist; its containers run ``scripts`` in turn, then the last one
        (a plugin that is stopped from outside once, then succeeds)."""
        self.held[image] = (list(scripts) or [Script()], dict(labels or {}))

    def next_script(self, image: str) -> Script:
        """The script of the next container of ``image``; ``ImageMissing`` if none."""
        with self._fake.lock:
            if image not in self.held:
                raise ImageMissing(f"image {image} is missing: rebuild the plugin version")
            scripts = self.held[image][0]
            return scripts.pop(0) if len(scripts) > 1 else scripts[0]

    def exists(self, image: str) -> bool:
        return image in self.held

    def labels(self, image: str) -> dict[str, str] | None:
        found = self.held.get(image)
        return dict(found[1]) if found is not None else None

    def remove(self, image: str) -> bool:
        return self.held.pop(image, None) is not None

    def build(self, *args: Any, **kwargs: Any) -> str:
        raise SandboxError("the fake engine builds nothing: register images with images.add")

    def push(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        raise SandboxError("the fake engine has no registry")

    def pull(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        raise SandboxError("the fake engine has no registry")


def scripted(*lines: str, exit_code: int = 0, **more: Any) -> Script:
    """A script writing ``lines`` to stdout (one frame each, newline added)."""
    frames = tuple((1, f"{line}\n".encode()) for line in lines)
    return Script(frames, exit_code, **more)
