"""One upload check in one worker: the request written, the worker's answer read within the
wall-time limit, and what came of it (the source, the refusal, or the limit it hit)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from executor.errors import PluginRejected, UploadCheckLimit
from executor.intake.archive import human_size
from executor.intake.build_scan import BuildScan
from executor.intake.bytecode import Bytecode, pyc_path
from executor.intake.check_process import CheckWorker
from executor.intake.check_wire import (
    CheckReply,
    CheckRequest,
    FrameReader,
    ImportsFound,
    Unpacked,
    WorkerOutcome,
    rebuild_rejection,
    write_frame,
)
from executor.intake.imports import FoundImport, ImportScan
from executor.intake.upload import PluginSource, source_digest

__all__ = ["CheckOutcome", "CheckRecord", "Checked", "run_check"]

log = logging.getLogger(__name__)

FRAME_SLACK_BYTES = 1024 * 1024  # a reply frame's room above the unpacked cap
MEMORY_SETTING = "EXECUTOR_UPLOAD_CHECK_MEMORY_BYTES"
TIME_SETTING = "EXECUTOR_UPLOAD_CHECK_TIMEOUT_S"


class CheckOutcome(StrEnum):
    """How one check ended, as the pool saw it."""

    CHECKED = "checked"
    REJECTED = "rejected"
    MEMORY_LIMIT = "memory_limit"  # the worker's allocation failed under its RLIMIT_AS
    TIME_LIMIT = "time_limit"  # the pool killed the worker at the wall-time limit
    ENDED = "ended"  # the worker exited or was killed by a signal mid-check


@dataclass(frozen=True)
class CheckRecord:
    """The pool's record of one check (``UploadChecker.records`` keeps the latest)."""

    tenant: str
    filename: str
    outcome: CheckOutcome
    worker_pid: int
    peak_rss_bytes: int  # the worker's report, or its kernel rusage when it was stopped
    unpacked_bytes: int
    replaced: bool  # the worker was stopped and a new one started in its place


@dataclass(frozen=True)
class Checked:
    """A check's result: the source or the refusal, and the unpacked bytes counted."""

    unpacked_bytes: int
    source: PluginSource | None = None
    error: PluginRejected | None = None
    build_scan: BuildScan | None = None  # the answer of ``scan_for_build``

    def result(self) -> PluginSource:
        """The checked source, or the refusal raised."""
        if self.error is not None:
            raise self.error
        assert self.source is not None  # a Checked holds one of the two
        return self.source


def run_check(
    worker: CheckWorker,
    tenant: str,
    request: CheckRequest,
    data: bytes,
    *,
    timeout_s: float,
    memory_bytes: int,
) -> tuple[Checked, CheckRecord]:
    """Check ``data`` in ``worker`` within ``timeout_s``; the result and the pool's record
    of it (``replaced`` when the worker was stopped at a limit or ended)."""
    return _Check(worker, tenant, request.filename, timeout_s, memory_bytes).run(request, data)


@dataclass(frozen=True)
class _Check:
    """One check of one upload (``filename``, for ``tenant``) in ``worker``."""

    worker: CheckWorker
    tenant: str
    filename: str
    timeout_s: float
    memory_bytes: int

    def run(self, request: CheckRequest, data: bytes) -> tuple[Checked, CheckRecord]:
        worker = self.worker
        reader = FrameReader(
            worker.replies,
            time.monotonic() + self.timeout_s,
            request.max_unpacked_bytes + FRAME_SLACK_BYTES,
        )
        unpacked = request.max_unpacked_bytes  # until the worker counted them
        try:
            write_frame(worker.requests, request.model_dump_json().encode())
            write_frame(worker.requests, data)
            worker.requests.flush()
            first = reader.read()
            if first is not None:
                unpacked = Unpacked.model_validate_json(first).bytes
                header = reader.read()
                if header is not None:
                    reply = CheckReply.model_validate_json(header)
                    return self._answer(reader, reply)
        except TimeoutError:
            return self._stopped(CheckOutcome.TIME_LIMIT, unpacked)
        except BrokenPipeError:
            pass  # the worker ended before it read the request
        return self._stopped(CheckOutcome.ENDED, unpacked)

    def _answer(self, reader: FrameReader, reply: CheckReply) -> tuple[Checked, CheckRecord]:
        """What the worker's reply says: the source, the refusal, or its memory limit."""
        if reply.outcome is WorkerOutcome.MEMORY_LIMIT:  # the worker exits: it is replaced
            return self._limited(reply, CheckOutcome.MEMORY_LIMIT, reply.file)
        if reply.imports is not None:
            return self._build_scan(reader, reply, reply.imports)
        if reply.rejection is not None:
            record = self._record(CheckOutcome.REJECTED, reply)
            checked = Checked(reply.unpacked_bytes, error=rebuild_rejection(reply.rejection))
            return checked, record
        assert reply.source is not None  # a CHECKED reply carries its source
        files = _read_files(reader, reply.source.paths)
        if files is None:
            return self._stopped(CheckOutcome.ENDED, reply.unpacked_bytes)
        source = PluginSource(
            files=files,
            handlers=reply.source.handlers,
            requirements=reply.source.requirements,
            sha256=source_digest(files),
            runtime=reply.source.runtime,
        )
        record = self._record(CheckOutcome.CHECKED, reply)
        return Checked(reply.unpacked_bytes, source=source), record

    def _build_scan(
        self, reader: FrameReader, reply: CheckReply, found: ImportsFound
    ) -> tuple[Checked, CheckRecord]:
        """A build's scan: the imports, then one frame per ``.pyc`` the reply names. The
        worker parsed untrusted code: a ``.pyc`` path that is not where the interpreter
        looks for one of the source's modules is not believed, and the worker is replaced."""
        expected = {pyc_path(path) for path in found.paths if path.endswith(".py")}
        compiled = _read_files(reader, found.bytecode)
        if compiled is None or not set(compiled) <= expected:
            return self._stopped(CheckOutcome.ENDED, reply.unpacked_bytes)
        imports = ImportScan(found.paths, tuple(FoundImport(*entry) for entry in found.imports))
        scan = BuildScan(imports, Bytecode(compiled, found.warnings))
        record = self._record(CheckOutcome.CHECKED, reply)
        return Checked(reply.unpacked_bytes, build_scan=scan), record

    def _stopped(self, outcome: CheckOutcome, unpacked: int) -> tuple[Checked, CheckRecord]:
        """The pool stopped the worker (time limit) or found it ended: its kernel record."""
        peak = self.worker.stop()
        reply = CheckReply(
            outcome=WorkerOutcome.MEMORY_LIMIT, peak_rss_bytes=peak, unpacked_bytes=unpacked
        )
        return self._limited(reply, outcome, None)

    def _limited(
        self, reply: CheckReply, outcome: CheckOutcome, file: str | None
    ) -> tuple[Checked, CheckRecord]:
        record = self._record(outcome, reply, replaced=True)
        log.warning(
            "upload check of %r (tenant %s) stopped: %s, worker %d peak RSS %d bytes",
            self.filename,
            self.tenant,
            outcome,
            self.worker.pid,
            reply.peak_rss_bytes,
        )
        error = self._limit_error(file or self.filename, outcome)
        return Checked(reply.unpacked_bytes, error=error), record

    def _limit_error(self, file: str, outcome: CheckOutcome) -> UploadCheckLimit:
        filename = self.filename
        if outcome is CheckOutcome.TIME_LIMIT:
            return UploadCheckLimit(
                f"Checking the upload '{filename}' took longer than {self.timeout_s:g} s "
                f"({TIME_SETTING}) and was stopped: make the sources smaller (move data out of "
                "the code, into a file the plugin reads at run time) and upload again.",
                file=file,
                limit=TIME_SETTING,
                maximum=self.timeout_s,
            )
        what = (
            f"its check process ended ({self.worker.ended_how()})"
            if outcome is CheckOutcome.ENDED
            else f"needed more than {human_size(self.memory_bytes)} of memory"
        )
        where = f" at {file}" if file != filename else ""
        return UploadCheckLimit(
            f"Checking the upload '{filename}'{where} {what} ({MEMORY_SETTING}) and was "
            "stopped: large literals in the code (long lists, dicts or strings) are the usual "
            "cause; move such data into a file the plugin reads at run time and upload again.",
            file=file,
            limit=MEMORY_SETTING,
            maximum=self.memory_bytes,
        )

    def _record(
        self, outcome: CheckOutcome, reply: CheckReply, *, replaced: bool = False
    ) -> CheckRecord:
        """What the check did; ``replaced`` when its worker was stopped at a limit."""
        return CheckRecord(
            tenant=self.tenant,
            filename=self.filename,
            outcome=outcome,
            worker_pid=self.worker.pid,
            peak_rss_bytes=reply.peak_rss_bytes,
            unpacked_bytes=reply.unpacked_bytes,
            replaced=replaced,
        )


def _read_files(reader: FrameReader, paths: Sequence[str]) -> dict[str, bytes] | None:
    """One frame per path, in order; None if the worker ended before the last."""
    files: dict[str, bytes] = {}
    for path in paths:
        content = reader.read()
        if content is None:
            return None
        files[path] = content
    return files
