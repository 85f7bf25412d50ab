"""The audit record of each gateway call on its run: written before the answer for a run
of another process, queued and written after it (in batches) for a run of this one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from executor.gateway.admission import Admitted, Grant
from executor.gateway.forward import Incoming, Reply
from executor.gateway.live import LiveTokens
from executor.store import gateway as gateway_store
from executor.store.db import Database

__all__ = ["CallRecorder"]

log = logging.getLogger(__name__)

MAX_RECORDED_PATH_CHARS = 2000
# A write of queued records waits this long for more calls to join its batch (a plugin's
# calls come one after the other, a millisecond apart), unless a run's end waits for them:
# a transaction per call cost a quarter of the call (``python -m bench --section gateway``).
GATHER_S = 0.01


@dataclass(frozen=True)
class _Unrecorded:
    """An answered call whose record is queued."""

    grant: Grant
    incoming: Incoming
    reply: Reply
    duration_ms: int
    # Its ordinal, when counted in memory: the token's count in the store is brought up
    # to it (a process that restarts during the run goes on counting from there).
    counted: int | None

    def fields(self) -> dict[str, object]:
        """The columns of its record (``executor.store.gateway.add_call``)."""
        return {
            "invocation_id": self.grant.invocation_id,
            "method": self.incoming.method[:16],
            "path": self.incoming.target.split("?", 1)[0][:MAX_RECORDED_PATH_CHARS],
            "status": self.reply.status,
            "request_bytes": self.incoming.length,
            "response_bytes": len(self.reply.body),
            "duration_ms": self.duration_ms,
            "error": self.reply.error,
        }


class CallRecorder:
    """Records the gateway's calls; ``on_call(status)`` is told of each one recorded.
    ``threads`` (the gateway's store threads, while it runs) write the queued records."""

    def __init__(
        self, db: Database, live: LiveTokens, on_call: Callable[[int], object] | None
    ) -> None:
        self.db = db
        self.live = live
        self.on_call = on_call
        self.threads: ThreadPoolExecutor | None = None
        self._unrecorded: list[_Unrecorded] = []
        self._unrecorded_lock = threading.Lock()
        self._writing = False  # a write of the queued records is on its way

    def record_later(
        self, what: Admitted | Grant, incoming: Incoming, reply: Reply, started: float
    ) -> Callable[[], None]:
        """What queues the call's record, to call once the call is answered. The record is
        pending from now: the runner waits for its run's pending records
        (``LiveTokens.settle``) before it records the run's end. Records queued while
        others are written are written together, in one transaction."""
        grant = what.grant if isinstance(what, Admitted) else what
        counted = what.ordinal if isinstance(what, Admitted) and what.counted_here else None
        self.live.recording(grant.invocation_id)

        def queue() -> None:
            call = _Unrecorded(grant, incoming, reply, _ms_since(started), counted)
            with self._unrecorded_lock:
                self._unrecorded.append(call)
                if self._writing:
                    return
                self._writing = True
            try:
                assert self.threads is not None, "Calls.running() first"
                self.threads.submit(self._write_unrecorded)
            except BaseException:
                self._write_unrecorded()  # the threads are gone (stopping): here, then
                raise

        return queue

    def _write_unrecorded(self) -> None:
        """Write the queued records until none is left: one writer at a time, so records
        are stored in the order their calls were answered."""
        while True:
            with self._unrecorded_lock:
                if not self._unrecorded:
                    self._writing = False
                    return
            self.live.awaited.wait(GATHER_S)
            with self._unrecorded_lock:
                batch, self._unrecorded = self._unrecorded, []
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Unrecorded]) -> None:
        lost = []
        try:
            rows = [
                gateway_store.NewCall(
                    call.fields(), call.grant.generation, call.grant.token_sha256, call.counted
                )
                for call in batch
            ]
            with self.db.session() as session:
                kept = gateway_store.add_calls(session, rows)
            lost = [call for call, recorded in zip(batch, kept, strict=True) if not recorded]
        except Exception:
            log.exception("%d gateway calls were not recorded", len(batch))
            lost = []
        finally:
            for call in batch:
                self.live.recorded(call.grant.invocation_id)
        for call in lost:
            _lease_lost(call.grant)
        if self.on_call is not None:
            for call in batch:
                self.on_call(call.reply.status)

    def record(self, grant: Grant, incoming: Incoming, reply: Reply, started: float) -> None:
        """Record the call now (on a store thread)."""
        call = _Unrecorded(grant, incoming, reply, _ms_since(started), None)
        with self.db.session() as session:
            recorded = gateway_store.add_call(session, grant.generation, **call.fields())
        if not recorded:
            _lease_lost(grant)
        if self.on_call is not None:
            self.on_call(reply.status)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _lease_lost(grant: Grant) -> None:
    log.warning(
        "invocation %s: a call of an attempt that lost its lease is not recorded",
        grant.invocation_id,
    )
