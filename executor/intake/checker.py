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
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass

from executor.errors import UploadCheckBusy
from executor.intake.build_scan import BuildScan
from executor.intake.check_process import CheckWorker
from executor.intake.check_run import Checked, CheckRecord, run_check
from executor.intake.check_wire import CheckKind, CheckRequest
from executor.intake.upload import UploadLimits
from executor.settings import UploadSettings

__all__ = ["CheckerLimits", "UploadChecker"]

log = logging.getLogger(__name__)

# Builds read their sources' imports in the pool too, holding a share as one more tenant
# (no tenant id has angle brackets).
BUILDS_TENANT = "<builds>"
SOURCE_ARCHIVE = "source.tar.gz"
QUEUED_PER_SLOT = 2  # uploads a tenant may have waiting per worker it may hold
RECORDS_KEPT = 200


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


class UploadChecker:
    """The pool: ``check`` runs one upload's checks in a worker, within the limits."""

    def __init__(self, limits: CheckerLimits) -> None:
        self.limits = limits
        self.records: deque[CheckRecord] = deque(maxlen=RECORDS_KEPT)
        self._cond = threading.Condition()
        self._idle: list[CheckWorker] = []
        self._busy = 0
        self._running: Counter[str] = Counter()
        self._queued: Counter[str] = Counter()
        self._closed = False

    def check(self, tenant: str, filename: str, data: bytes, limits: UploadLimits) -> Checked:
        """Unpack and check ``data`` for ``tenant`` in a worker (waiting for the tenant's
        share of the pool); UploadCheckBusy when the tenant's queue is full."""
        return self._check(tenant, CheckRequest(filename=filename, **asdict(limits)), data)

    def scan_for_build(self, source_tar_gz: bytes) -> BuildScan:
        """A stored version's source parsed and compiled for its build (the import warning,
        the image's bytecode) in a worker too; builds share the pool as one more tenant.
        Raises the refusal."""
        request = CheckRequest(
            kind=CheckKind.IMPORTS, filename=SOURCE_ARCHIVE, **asdict(UploadLimits())
        )
        checked = self._check(BUILDS_TENANT, request, source_tar_gz)
        if checked.error is not None:
            raise checked.error
        assert checked.build_scan is not None  # an IMPORTS request is answered with one
        return checked.build_scan

    def _check(self, tenant: str, request: CheckRequest, data: bytes) -> Checked:
        worker = self._acquire(tenant)
        keep = False
        try:
            if worker is not None and worker.process.poll() is not None:
                worker.stop()  # ended while idle: not this upload's doing
                worker = None
            if worker is None:
                worker = CheckWorker(self.limits.memory_bytes)
            checked, record = run_check(
                worker,
                tenant,
                request,
                data,
                timeout_s=self.limits.timeout_s,
                memory_bytes=self.limits.memory_bytes,
            )
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

    def _replacement(self) -> CheckWorker | None:
        """A new worker for the slot of a stopped one (None: the next check starts one)."""
        if self._closed:
            return None
        try:
            return CheckWorker(self.limits.memory_bytes)
        except (OSError, RuntimeError):
            log.exception("could not start an upload check worker; the next check tries again")
            return None

    def _acquire(self, tenant: str) -> CheckWorker | None:
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

    def _release(self, tenant: str, worker: CheckWorker | None) -> None:
        with self._cond:
            self._running[tenant] -= 1
            self._busy -= 1
            if worker is not None and not self._closed:
                self._idle.append(worker)
                worker = None
            self._cond.notify_all()
        if worker is not None:
            worker.stop()
