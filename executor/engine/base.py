"""What every engine of the executor shares: the labels on what it creates, what it
reports, and the shape of its answers (``client.Engine`` is the Docker Engine's,
``fake.FakeEngine`` one in memory)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

from executor.errors import SandboxError

__all__ = [
    "ENGINE_ID_CHARS",
    "INVOCATION_LABEL",
    "LEASE_LABEL",
    "MANAGED_LABEL",
    "NODE_LABEL",
    "POOL_LABEL",
    "Attachment",
    "EngineInfo",
    "EngineRefused",
    "Frames",
    "ImageMissing",
    "StopRecord",
]

Frames = Generator[tuple[int, bytes], None, None]

# Labels on every container the executor starts: how crash recovery finds them.
MANAGED_LABEL = "io.plugin-executor.managed"
INVOCATION_LABEL = "io.plugin-executor.invocation"
# On warm-pool containers instead (they have no invocation yet): the pool they wait in.
POOL_LABEL = "io.plugin-executor.pool"
# The node (executor process) that created it: recovery and sweeps touch only their own.
NODE_LABEL = "io.plugin-executor.node"
# The lease generation a run's container was started under: adopted only while current.
LEASE_LABEL = "io.plugin-executor.lease"
ENGINE_ID_CHARS = 12  # the short engine id, as `docker info` IDs are shown


@dataclass(frozen=True)
class EngineInfo:
    """What a node reports of its engine."""

    id: str
    version: str
    runtimes: list[str]

    @property
    def short_id(self) -> str:
        """The engine id without separators, cut short (for node ids)."""
        return self.id.replace(":", "").lower()[:ENGINE_ID_CHARS]


@dataclass(frozen=True)
class StopRecord:
    """What the engine recorded of a container's end: the signals it was asked to send
    (``kill`` events: ``docker stop``, ``docker kill``, its own shutdown) and whether the
    kernel's OOM killer ended it, or that it holds no record of that end at all (``found``
    False: the engine restarted since)."""

    found: bool
    signals: tuple[int, ...] = ()
    # An ``oom`` event: the kernel's OOM killer ended it. The engine's ``OOMKilled`` flag
    # misses an OOM kill whose event it handles after the exit (a loaded node, seen under
    # gVisor); the event itself is still logged.
    oom_killed: bool = False


class ImageMissing(SandboxError):
    """The image is not on this engine (with a registry, the caller pulls it)."""


class EngineRefused(SandboxError):
    """The engine answered but refused a registry request (push, pull): ``cause`` is its
    explanation; ``not_found`` when it had no such image or manifest."""

    def __init__(self, message: str, cause: str, *, not_found: bool) -> None:
        super().__init__(message)
        self.cause = cause
        self.not_found = not_found


class Attachment(Protocol):
    """A created container's stdin and output, attached before it starts."""

    def send(self, data: bytes) -> None:
        """Write ``data`` to stdin and close it (a container that exited is fine)."""

    def frames(self) -> Frames:
        """Its output as ``(stream id, bytes)`` frames until it ends; closes the attachment."""

    def ended(self) -> bool:
        """True when the output stream has ended (the container exited), without waiting."""

    def close(self) -> None:
        """Let go of the container's streams."""
