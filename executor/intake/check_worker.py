"""An upload check worker: ``python -m executor.intake.check_worker MEMORY_BYTES``.

Started by ``executor.intake.check_process`` for the pool of ``executor.intake.checker``; it
limits its own address space (RLIMIT_AS) to MEMORY_BYTES before reading anything, then
answers check requests on stdin/stdout (see ``executor.intake.check_wire``) until stdin
closes. ``ast.parse`` needs some 500 times a
source's size in memory: here a bomb fails an allocation inside its own process, which then
exits, instead of growing the API process.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable
from functools import partial
from typing import IO

from executor.errors import PluginRejected, UploadTooLarge
from executor.intake.build_scan import BuildScan, scan_for_build
from executor.intake.check_wire import (
    READY,
    CheckKind,
    CheckReply,
    CheckRequest,
    ImportsFound,
    Rejection,
    ReplySource,
    Unpacked,
    WorkerOutcome,
    read_frame,
    write_frame,
)
from executor.intake.upload import UploadLimits, check_files, unpack_upload

KIB = 1024
# A MemoryError after this check's peak RSS passed this share of the limit is the limit's;
# below it, it is the parser's own stack overflow on deep nesting (a MemoryError too, in
# Python 3.11, raised long before memory runs short).
NEAR_LIMIT_SHARE = 0.5
_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_RESET_PEAK_RSS = b"5"  # clear_refs: reset VmHWM to the current RSS


def main(argv: list[str]) -> int:
    memory_bytes = int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the reply frames
    _send(replies, READY)
    while (header := read_frame(requests)) is not None:
        data = read_frame(requests)
        if data is None:
            break
        _reset_peak()
        request = CheckRequest.model_validate_json(header)
        reply, files = check(request, data, memory_bytes, partial(_send, replies))
        _send(replies, reply.model_dump_json().encode(), *files)
        if reply.outcome is WorkerOutcome.MEMORY_LIMIT:
            return 0  # its heap may be fragmented near the limit: the pool starts a new one
    return 0


def check(
    request: CheckRequest, data: bytes, memory_bytes: int, send: Callable[[bytes], None]
) -> tuple[CheckReply, list[bytes]]:
    """Unpack and check one upload (or scan and compile a stored source for its build): the
    reply and the files that follow it.

    ``send`` gets an ``Unpacked`` frame first, once unpacking ended, so the server knows the
    unpacked size even of a check it stops later at a limit.
    """
    limits = UploadLimits(**request.model_dump(exclude={"filename", "kind"}))
    try:
        files = unpack_upload(request.filename, data, limits)
    except PluginRejected as exc:
        # Unpacking counted past its cap before it stopped; other refusals unpacked nothing.
        past_cap = isinstance(exc, UploadTooLarge) and exc.limit == limits.max_unpacked_bytes
        unpacked = limits.max_unpacked_bytes if past_cap else 0
        send(Unpacked(bytes=unpacked).model_dump_json().encode())
        return _rejected(exc, unpacked), []
    except MemoryError:
        send(Unpacked(bytes=0).model_dump_json().encode())
        return _limit_reply(request.filename, 0), []
    unpacked = sum(len(content) for content in files.values())
    send(Unpacked(bytes=unpacked).model_dump_json().encode())
    try:
        if request.kind is CheckKind.IMPORTS:
            return _build_scan_reply(scan_for_build(files), unpacked)
        source = check_files(files, limits)
    except MemoryError:
        return _limit_reply(request.filename, unpacked), []
    except PluginRejected as exc:
        if (
            isinstance(exc.__cause__, MemoryError)
            and _peak_rss() >= memory_bytes * NEAR_LIMIT_SHARE
        ):
            return _limit_reply(exc.file or request.filename, unpacked), []
        return _rejected(exc, unpacked), []
    paths = list(source.files)
    reply = CheckReply(
        outcome=WorkerOutcome.CHECKED,
        peak_rss_bytes=_peak_rss(),
        unpacked_bytes=unpacked,
        source=ReplySource(
            handlers=source.handlers,
            requirements=source.requirements,
            runtime=source.runtime,
            paths=paths,
        ),
    )
    return reply, [source.files[path] for path in paths]


def _build_scan_reply(scan: BuildScan, unpacked: int) -> tuple[CheckReply, list[bytes]]:
    found = tuple((i.path, i.module, i.line) for i in scan.imports.imports)
    compiled = scan.bytecode.files
    reply = CheckReply(
        outcome=WorkerOutcome.CHECKED,
        peak_rss_bytes=_peak_rss(),
        unpacked_bytes=unpacked,
        imports=ImportsFound(
            paths=scan.imports.paths,
            imports=found,
            bytecode=tuple(compiled),
            warnings=scan.bytecode.warnings,
        ),
    )
    return reply, list(compiled.values())


def _rejected(exc: PluginRejected, unpacked: int) -> CheckReply:
    return CheckReply(
        outcome=WorkerOutcome.REJECTED,
        peak_rss_bytes=_peak_rss(),
        unpacked_bytes=unpacked,
        rejection=Rejection(code=exc.code, message=exc.message, details=exc.details),
    )


def _limit_reply(file: str, unpacked: int) -> CheckReply:
    return CheckReply(
        outcome=WorkerOutcome.MEMORY_LIMIT,
        peak_rss_bytes=_peak_rss(),
        unpacked_bytes=unpacked,
        file=file,
    )


def _send(replies: IO[bytes], *frames: bytes) -> None:
    for frame in frames:
        write_frame(replies, frame)
    replies.flush()


def _status_kib(field: str) -> int:
    with open(_STATUS, encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _peak_rss() -> int:
    """This check's peak resident size (VmHWM, reset before each check), in bytes."""
    return _status_kib("VmHWM") * KIB


def _reset_peak() -> None:
    # Where /proc forbids it (some sandboxes), the peak stays the worker's since its start.
    with contextlib.suppress(OSError), open(_CLEAR_REFS, "wb") as clear:
        clear.write(_RESET_PEAK_RSS)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
