"""What the server and an upload check worker say to each other over the worker's pipes.

Each message is frames: an 8-byte big-endian length, then that many bytes. A worker starts
with ``READY``. A request is a ``CheckRequest`` (JSON) and the upload's bytes; the answer is
an ``Unpacked`` (JSON), then a ``CheckReply`` (JSON) and one frame per file it names.
Neither side unpickles anything: the worker parses untrusted input, so what it sends back is
plain data the server validates.
"""

from __future__ import annotations

import os
import select
import time
from enum import StrEnum
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from executor.errors import (
    PluginRejected,
    RequirementsForbidden,
    UnknownRuntime,
    UploadTooLarge,
)

__all__ = [
    "READY",
    "CheckKind",
    "CheckReply",
    "CheckRequest",
    "FrameReader",
    "ImportsFound",
    "Rejection",
    "ReplySource",
    "Unpacked",
    "WorkerOutcome",
    "read_frame",
    "rebuild_rejection",
    "write_frame",
]

LENGTH_BYTES = 8
READY = b"ready"  # a worker's first frame: its limit is set and its imports are done
_REJECTIONS: dict[str, type[PluginRejected]] = {
    cls.code: cls for cls in (PluginRejected, UploadTooLarge, RequirementsForbidden)
}


class WorkerOutcome(StrEnum):
    """How a check ended, as the worker saw it."""

    CHECKED = "checked"  # the upload passed; the reply carries its files
    REJECTED = "rejected"  # a check refused it; the reply carries the refusal
    MEMORY_LIMIT = "memory_limit"  # an allocation failed under the worker's RLIMIT_AS


class CheckKind(StrEnum):
    """What a request asks of the worker."""

    UPLOAD = "upload"  # unpack and check an upload: the source or the refusal
    IMPORTS = "imports"  # a stored source archive's imports and bytecode (builds)


class CheckRequest(BaseModel):
    """One upload to check, with the limits that apply to it (``UploadLimits``' fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CheckKind = CheckKind.UPLOAD
    filename: str
    max_entries: int
    max_archive_bytes: int
    max_unpacked_bytes: int
    max_file_bytes: int
    allow_url_requirements: bool
    allow_requirements: bool


class Rejection(BaseModel):
    """A ``PluginRejected`` (or subclass) by its stable code, message and details."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str
    details: dict[str, Any]


class ReplySource(BaseModel):
    """A checked upload without its files (those follow as frames, in ``paths`` order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handlers: tuple[str, ...]
    requirements: str
    runtime: str | None
    paths: list[str]


class ImportsFound(BaseModel):
    """A ``BuildScan``: the source's paths, its (path, module, line) imports, the paths of
    its ``.pyc`` files (one frame each follows the reply, in this order) and the compiler's
    warnings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paths: tuple[str, ...]
    imports: tuple[tuple[str, str, int], ...]
    bytecode: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class Unpacked(BaseModel):
    """Sent once unpacking ended, before the parsing that may hit a limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes: int


class CheckReply(BaseModel):
    """The worker's answer: the outcome, its own peak RSS for this check, unpacked bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: WorkerOutcome
    peak_rss_bytes: int
    unpacked_bytes: int
    file: str | None = None  # the file being checked when a limit was hit
    rejection: Rejection | None = None
    source: ReplySource | None = None
    imports: ImportsFound | None = None  # the answer to a CheckKind.IMPORTS request


def rebuild_rejection(rejection: Rejection) -> PluginRejected:
    """The exception the worker raised, rebuilt from its code (unknown codes: the base)."""
    details = rejection.details
    file, line = details.get("file"), details.get("line")
    if rejection.code == UnknownRuntime.code:
        return UnknownRuntime(
            rejection.message,
            field=str(details.get("field")),
            allowed=list(details.get("allowed", [])),
            file=file,
            line=line,
        )
    if rejection.code == UploadTooLarge.code:
        return UploadTooLarge(rejection.message, file=file, line=line, limit=details.get("limit"))
    return _REJECTIONS.get(rejection.code, PluginRejected)(rejection.message, file=file, line=line)


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(len(payload).to_bytes(LENGTH_BYTES, "big"))
    stream.write(payload)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame of a blocking stream; None at its end (the other side closed)."""
    head = stream.read(LENGTH_BYTES)
    if len(head) < LENGTH_BYTES:
        return None
    size = int.from_bytes(head, "big")
    payload = stream.read(size)
    return payload if len(payload) == size else None


class FrameReader:
    """Reads frames from a pipe until a deadline (``time.monotonic``), never past it.

    ``read`` returns None when the pipe ended (the worker exited) and raises
    ``TimeoutError`` when the deadline passed first; a frame over ``max_frame`` bytes is
    an ended pipe too (the worker is ours, but its output is bounded all the same).
    """

    def __init__(self, fd: int, deadline: float, max_frame: int) -> None:
        self.fd = fd
        self.deadline = deadline
        self.max_frame = max_frame

    def read(self) -> bytes | None:
        head = self._exactly(LENGTH_BYTES)
        if head is None:
            return None
        size = int.from_bytes(head, "big")
        return self._exactly(size) if size <= self.max_frame else None

    def _exactly(self, size: int) -> bytes | None:
        chunks: list[bytes] = []
        left = size
        while left:
            wait = self.deadline - time.monotonic()
            if wait <= 0 or not select.select([self.fd], [], [], wait)[0]:
                raise TimeoutError
            chunk = os.read(self.fd, min(left, 1024 * 1024))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
