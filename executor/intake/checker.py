"""Upload checks in bounded worker processes, shared fairly between tenants.

Unpacking an upload and parsing its sources (``executor.intake.upload``) runs in a small
pool of worker processes (``executor.intake.check_worker``), each with an address-space
limit (RLIMIT_AS) and a wall-time limit per check, so an upload bomb costs at most one
worker's memory and time, never the API process's. A worker that hit a limit (or ended) is
replaced; the upload answers 422 ``upload_check_limit``.

Each tenant holds at most ``per_tenant`` workers at once and may have a few more uploads
waiting (``QUEUED_PER_SLOT``); past that it is answered 429 ``upload_check_busy``, so one
tenant's queue of bombs can neither hold every worker nor every API thread.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import executor
from executor.errors import PluginRejected, UploadCheckBusy, UploadCheckLimit
from executor.intake.archive import human_size
from executor.intake.check_wire import (
    READY,
    CheckKind,
    CheckReply,
    CheckRequest,
    FrameReader,
    Unpacked,
    WorkerOutcome,
    rebuild_rejection,
    write_frame,
)
from executor.intake.imports import FoundImport, ImportScan
from executor.intake.upload import PluginSource, UploadLimits, source_digest
from executor.settings import UploadSettings

__all__ = ["CheckOutcome", "CheckRecord", "Checked", "CheckerLimits", "UploadChecker"]

log = logging.getLogger(__name__)

WORKER_MODULE = "executor.intake.check_worker"
# A new worker has this long to start (interpreter, imports) before the check's own limit.
WORKER_START_S = 120.0
# Builds read their sources' imports in the pool too, holding a share as one more tenant
# (no tenant id has angle brackets).
BUILDS_TENANT = "<builds>"
SOURCE_ARCHIVE = "source.tar.gz"
QUEUED_PER_SLOT = 2  # uploads a tenant may have waiting per worker it may hold
RECORDS_KEPT = 200
FRAME_SLACK_BYTES = 1024 * 1024  # a reply frame's room above the unpacked cap
KIB = 1024
# What a worker may see of the environment: never the executor's secrets.
WORKER_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TMPDIR")
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
    imports: ImportScan | None = None  # the answer of ``scan_imports``

    def result(self) -> PluginSource:
        """The checked source, or the refusal raised."""
        if self.error is not None:
            raise self.error
        assert self.source is not None  # a Checked holds one of the two
        return self.source


@dataclass(frozen=True)
class CheckerLimits:
    workers: int = 2
    per_tenant: int = 1
    memory_bytes: int = 1024 * 1024 * 1024
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, uploads: UploadSettings) -> CheckerLimits:
        return cls(
            workers=uploads.check_workers,
            per_tenant=uploads.check_per_tenant,
            memory_bytes=uploads.check_memory_bytes,
            timeout_s=uploads.check_timeout_s,
        )


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, memory_bytes: int) -> None:
        env = {key: os.environ[key] for key in WORKER_ENV_KEYS if key in os.environ}
        env["PYTHONPATH"] = str(Path(executor.__file__).resolve().parent.parent)
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = self.process.stdin
        self.replies = self.process.stdout.fileno()
        ready = FrameReader(self.replies, time.monotonic() + WORKER_START_S, len(READY))
        try:
            started = ready.read() == READY
        except TimeoutError:
            started = False
        if not started:
            self.stop()
            raise RuntimeError(f"the upload check worker ({WORKER_MODULE}) did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        """Kill the process and reap it; its peak RSS in bytes, from the kernel."""
        peak = 0
        if self.process.returncode is None:
            # Not Popen.kill: it polls first, reaping the process before wait4 sees its usage.
            os.kill(self.process.pid, signal.SIGKILL)  # unreaped, the pid is still this one's
            _, status, usage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            peak = usage.ru_maxrss * KIB
        self.requests.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return peak

    def ended_how(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"


class UploadChecker:
    """The pool: ``check`` runs one upload's checks in a worker, within the limits."""

    def __init__(self, limits: CheckerLimits) -> None:
        self.limits = limits
        self.records: deque[CheckRecord] = deque(maxlen=RECORDS_KEPT)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy = 0
        self._running: Counter[str] = Counter()
        self._queued: Counter[str] = Counter()
        self._closed = False

    def check(self, tenant: str, filename: str, data: bytes, limits: UploadLimits) -> Checked:
        """Unpack and check ``data`` for ``tenant`` in a worker (waiting for the tenant's
        share of the pool); UploadCheckBusy when the tenant's queue is full."""
        return self._check(tenant, CheckRequest(filename=filename, **asdict(limits)), data)

    def scan_imports(self, source_tar_gz: bytes) -> ImportScan:
        """The module-level imports of a stored version's source (its build's warning), read
        in a worker too; builds share the pool as one more tenant. Raises the refusal."""
        request = CheckRequest(
            kind=CheckKind.IMPORTS, filename=SOURCE_ARCHIVE, **asdict(UploadLimits())
        )
        checked = self._check(BUILDS_TENANT, request, source_tar_gz)
        if checked.error is not None:
            raise checked.error
        assert checked.imports is not None  # an IMPORTS request is answered with them
        return checked.imports

    def _check(self, tenant: str, request: CheckRequest, data: bytes) -> Checked:
        worker = self._acquire(tenant)
        keep = False
        try:
            if worker is not None and worker.process.poll() is not None:
                worker.stop()  # ended while idle: not this upload's doing
                worker = None
            if worker is None:
                worker = _Worker(self.limits.memory_bytes)
            checked, record = self._run(worker, tenant, request, data)
            keep = not record.replaced
            self.records.append(record)
            return checked
        finally:
            if worker is not None and not keep:
                worker.stop()
                worker = self._replacement()
            self._release(tenant, worker)

    def close(self) -> None:
        """Stop the idle workers; busy ones are stopped when their check ends."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _replacement(self) -> _Worker | None:
        """A new worker for the slot of a stopped one (None: the next check starts one)."""
        if self._closed:
            return None
        try:
            return _Worker(self.limits.memory_bytes)
        except (OSError, RuntimeError):
            log.exception("could not start an upload check worker; the next check tries again")
            return None

    def _acquire(self, tenant: str) -> _Worker | None:
        """A slot for ``tenant``, with an idle worker if there is one (None: start one)."""
        share = self.limits.per_tenant
        with self._cond:
            held = self._running[tenant] + self._queued[tenant]
            # Builds wait as long as it takes: max_concurrent_builds bounds them already.
            if tenant != BUILDS_TENANT and held >= share * (1 + QUEUED_PER_SLOT):
                raise UploadCheckBusy(
                    f"this tenant already has {held} uploads being checked or waiting: wait "
                    "for their answers and retry",
                    retry_after_s=math.ceil(self.limits.timeout_s),
                )
            self._queued[tenant] += 1
            try:
                while self._busy >= self.limits.workers or self._running[tenant] >= share:
                    self._cond.wait()
            finally:
                self._queued[tenant] -= 1
            self._running[tenant] += 1
            self._busy += 1
            return self._idle.pop() if self._idle else None

    def _release(self, tenant: str, worker: _Worker | None) -> None:
        with self._cond:
            self._running[tenant] -= 1
            self._busy -= 1
            if worker is not None and not self._closed:
                self._idle.append(worker)
                worker = None
            self._cond.notify_all()
        if worker is not None:
            worker.stop()

    def _run(
        self, worker: _Worker, tenant: str, request: CheckRequest, data: bytes
    ) -> tuple[Checked, CheckRecord]:
        filename = request.filename
        reader = FrameReader(
            worker.replies,
            time.monotonic() + self.limits.timeout_s,
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
                    return self._answer(worker, reader, tenant, filename, reply)
        except TimeoutError:
            return self._stopped(worker, tenant, filename, CheckOutcome.TIME_LIMIT, unpacked)
        except BrokenPipeError:
            pass  # the worker ended before it read the request
        return self._stopped(worker, tenant, filename, CheckOutcome.ENDED, unpacked)

    def _answer(
        self, worker: _Worker, reader: FrameReader, tenant: str, filename: str, reply: CheckReply
    ) -> tuple[Checked, CheckRecord]:
        """What the worker's reply says: the source, the refusal, or its memory limit."""
        if reply.outcome is WorkerOutcome.MEMORY_LIMIT:  # the worker exits: it is replaced
            return self._limited(
                worker, tenant, filename, reply, CheckOutcome.MEMORY_LIMIT, reply.file
            )
        if reply.imports is not None:
            found = tuple(FoundImport(*entry) for entry in reply.imports.imports)
            record = self._record(worker, tenant, filename, CheckOutcome.CHECKED, reply)
            scan = ImportScan(reply.imports.paths, found)
            return Checked(reply.unpacked_bytes, imports=scan), record
        if reply.rejection is not None:
            record = self._record(worker, tenant, filename, CheckOutcome.REJECTED, reply)
            checked = Checked(reply.unpacked_bytes, error=rebuild_rejection(reply.rejection))
            return checked, record
        assert reply.source is not None  # a CHECKED reply carries its source
        files: dict[str, bytes] = {}
        for path in reply.source.paths:
            content = reader.read()
            if content is None:
                return self._stopped(
                    worker, tenant, filename, CheckOutcome.ENDED, reply.unpacked_bytes
                )
            files[path] = content
        source = PluginSource(
            files=files,
            handlers=reply.source.handlers,
            requirements=reply.source.requirements,
            sha256=source_digest(files),
            runtime=reply.source.runtime,
        )
        record = self._record(worker, tenant, filename, CheckOutcome.CHECKED, reply)
        return Checked(reply.unpacked_bytes, source=source), record

    def _stopped(
        self, worker: _Worker, tenant: str, filename: str, outcome: CheckOutcome, unpacked: int
    ) -> tuple[Checked, CheckRecord]:
        """The pool stopped the worker (time limit) or found it ended: its kernel record."""
        peak = worker.stop()
        reply = CheckReply(
            outcome=WorkerOutcome.MEMORY_LIMIT, peak_rss_bytes=peak, unpacked_bytes=unpacked
        )
        return self._limited(worker, tenant, filename, reply, outcome, None)

    def _limited(
        self,
        worker: _Worker,
        tenant: str,
        filename: str,
        reply: CheckReply,
        outcome: CheckOutcome,
        file: str | None,
    ) -> tuple[Checked, CheckRecord]:
        record = self._record(worker, tenant, filename, outcome, reply, replaced=True)
        log.warning(
            "upload check of %r (tenant %s) stopped: %s, worker %d peak RSS %d bytes",
            filename,
            tenant,
            outcome,
            worker.pid,
            reply.peak_rss_bytes,
        )
        error = self._limit_error(filename, file or filename, outcome, worker)
        return Checked(reply.unpacked_bytes, error=error), record

    def _limit_error(
        self, filename: str, file: str, outcome: CheckOutcome, worker: _Worker
    ) -> UploadCheckLimit:
        if outcome is CheckOutcome.TIME_LIMIT:
            return UploadCheckLimit(
                f"Checking the upload '{filename}' took longer than {self.limits.timeout_s:g} s "
                f"({TIME_SETTING}) and was stopped: make the sources smaller (move data out of "
                "the code, into a file the plugin reads at run time) and upload again.",
                file=file,
                limit=TIME_SETTING,
                maximum=self.limits.timeout_s,
            )
        what = (
            f"its check process ended ({worker.ended_how()})"
            if outcome is CheckOutcome.ENDED
            else f"needed more than {human_size(self.limits.memory_bytes)} of memory"
        )
        where = f" at {file}" if file != filename else ""
        return UploadCheckLimit(
            f"Checking the upload '{filename}'{where} {what} ({MEMORY_SETTING}) and was "
            "stopped: large literals in the code (long lists, dicts or strings) are the usual "
            "cause; move such data into a file the plugin reads at run time and upload again.",
            file=file,
            limit=MEMORY_SETTING,
            maximum=self.limits.memory_bytes,
        )

    @staticmethod
    def _record(
        worker: _Worker,
        tenant: str,
        filename: str,
        outcome: CheckOutcome,
        reply: CheckReply,
        *,
        replaced: bool = False,
    ) -> CheckRecord:
        """What the check did; ``replaced`` when its worker was stopped at a limit."""
        return CheckRecord(
            tenant=tenant,
            filename=filename,
            outcome=outcome,
            worker_pid=worker.pid,
            peak_rss_bytes=reply.peak_rss_bytes,
            unpacked_bytes=reply.unpacked_bytes,
            replaced=replaced,
        )
