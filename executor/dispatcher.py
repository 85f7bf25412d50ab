"""Claims queued invocations and runs each in the sandbox, within the concurrency limit.

The dispatcher is woken when events are stored (``wake``) and also polls, so work queued by
another process or left by a previous one is picked up.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from executor.engine import Engine
from executor.errors import ExecutorError
from executor.gateway import CONTAINER_SOCKET_DIR, SOCKET_NAME
from executor.gateway_policy import PlatformTargets
from executor.output import OutputCollector, OutputLine
from executor.sandbox import RunOutcome, Sandbox
from executor.schemas import ApiInfo, Envelope, EnvelopeEvent
from executor.settings import Settings
from executor.store import gateway as gateway_store
from executor.store import invocations as invocation_store
from executor.store import logs as log_store
from executor.store.db import Database
from executor.store.tables import Event, Invocation, PluginVersion, utcnow
from executor.tokens import hash_token, mint_token

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

STOP_WAIT_S = 30.0


class RunLogWriter:
    """Writes one invocation's log lines to the store, numbered in order."""

    def __init__(self, db: Database, invocation: Invocation, label_id: str | None) -> None:
        self.db = db
        self.invocation = invocation
        self.label_id = label_id
        self.seq = 0

    def write(self, lines: list[OutputLine]) -> None:
        if not lines:
            return
        now = utcnow()
        records = []
        for line in lines:
            self.seq += 1
            records.append(
                {
                    "created_at": now,
                    "plugin_name": self.invocation.plugin_name,
                    "project_id": self.invocation.project_id,
                    "run_id": self.invocation.id,
                    "log_type": line.log_type,
                    "content": line.content,
                    "asset_id": self.invocation.asset_id,
                    "label_id": self.label_id,
                    "stream": line.stream,
                    "seq": self.seq,
                }
            )
        with self.db.session() as session:
            log_store.add_records(session, records)

    def system(self, content: str) -> None:
        self.write([OutputLine("SYSTEM", content, "system")])


class Dispatcher:
    """Runs queued invocations on a thread pool of ``max_concurrent_runs`` workers."""

    def __init__(self, db: Database, engine: Engine, settings: Settings) -> None:
        self.db = db
        self.engine = engine
        self.settings = settings
        self.sandbox = Sandbox(engine, settings.sandbox, settings.resolved_gateway_socket_dir)
        self.targets = PlatformTargets(settings)
        self._pool = ThreadPoolExecutor(settings.max_concurrent_runs, "run")
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_runs)
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Recover what a previous process left, then start claiming."""
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New work was queued: look at the queue now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        """Stop claiming and wait for the runs in progress."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
        self._pool.shutdown(wait=True)

    def _recover(self) -> None:
        # A single process owns the queue: containers left by a previous process cannot be
        # re-attached, so they are removed and their invocations run again.
        for container in self.engine.managed_containers():
            self.engine.remove_container(str(container["Id"]))
        with self.db.session() as session:
            requeued = invocation_store.requeue_running(session)
            gateway_store.revoke_all(session)
        if requeued:
            log.warning("re-queued %d invocations left running by a previous process", requeued)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                self._claim_available()
            except Exception:
                log.exception("dispatcher loop error; retrying at the next poll")
            self._wakeup.wait(self.settings.dispatch_poll_s)

    def _claim_available(self) -> None:
        while not self._stopping.is_set():
            if not self._slots.acquire(blocking=False):
                return
            invocation = self._claim_next()
            if invocation is None:
                self._slots.release()
                return
            self._pool.submit(self._run_and_release, invocation)

    def _claim_next(self) -> Invocation | None:
        with self.db.session() as session:
            for invocation_id in invocation_store.queued_ids(session, limit=8):
                invocation = invocation_store.claim(session, invocation_id)
                if invocation is not None:
                    return invocation
        return None

    def _run_and_release(self, invocation: Invocation) -> None:
        try:
            self.run(invocation)
        except Exception:
            log.exception("invocation %s crashed in the executor", invocation.id)
        finally:
            self._slots.release()
            self._wakeup.set()

    def run(self, invocation: Invocation) -> None:
        """Run one claimed invocation to its terminal state."""
        with self.db.session() as session:
            event = session.get(Event, invocation.event_id)
            version = session.get(PluginVersion, invocation.version_id)
        if event is None or version is None or not version.image_tag:
            self._finish(invocation, "crashed", None, "the plugin version or event is gone")
            return
        token = mint_token()
        envelope = self._envelope(invocation, event, token)
        with self.db.session() as session:
            gateway_store.add_token(
                session, hash_token(token), invocation.id, invocation.project_id, envelope.deadline
            )
        try:
            self._run_with_token(invocation, event, version, envelope, token)
        finally:
            # Also when the run ended in an executor error: the token never outlives it.
            with self.db.session() as session:
                gateway_store.revoke_for(session, invocation.id)

    def _run_with_token(
        self,
        invocation: Invocation,
        event: Event,
        version: PluginVersion,
        envelope: Envelope,
        token: str,
    ) -> None:
        assert version.image_tag is not None
        label_id = event.label.get("id") if isinstance(event.label, dict) else None
        writer = RunLogWriter(self.db, invocation, str(label_id) if label_id else None)
        collector = OutputCollector(self.settings.sandbox.log_cap_bytes, secrets=(token,))

        def on_output(stream_id: int, data: bytes) -> bool:
            writer.write(collector.feed(stream_id, data))
            self._note_handler_start(invocation, collector)
            return not collector.truncated

        try:
            outcome = self.sandbox.run(
                version.image_tag, envelope.model_dump_json().encode(), invocation.id, on_output
            )
        except ExecutorError as exc:
            writer.system(f"the executor could not run the plugin: {exc.message}")
            self._finish(invocation, "crashed", None, exc.message)
            return
        writer.write(collector.close())
        self._record_outcome(invocation, outcome, collector, writer)

    def _envelope(self, invocation: Invocation, event: Event, token: str) -> Envelope:
        deadline = datetime.now(UTC) + timedelta(seconds=self.settings.sandbox.timeout_s)
        return Envelope(
            invocation_id=invocation.id,
            plugin=invocation.plugin_name,
            version=invocation.version_number,
            project_id=invocation.project_id,
            event=EnvelopeEvent(
                type=event.type, asset_id=event.asset_id, label=event.label, payload=event.payload
            ),
            api=ApiInfo(
                url=self.targets.plugin_url(invocation.project_id),
                token=token,
                socket=f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}",
            ),
            deadline=deadline,
        )

    def _note_handler_start(self, invocation: Invocation, collector: OutputCollector) -> None:
        started = collector.handler_started_at
        if started is not None and invocation.handler_started_at is None:
            invocation.handler_started_at = started
            with self.db.session() as session:
                invocation_store.mark_handler_started(session, invocation.id, started)

    def _record_outcome(
        self,
        invocation: Invocation,
        outcome: RunOutcome,
        collector: OutputCollector,
        writer: RunLogWriter,
    ) -> None:
        if collector.truncated:
            writer.system(
                f"log output truncated at {self.settings.sandbox.log_cap_bytes} bytes: "
                f"{collector.dropped_bytes} more bytes were dropped"
            )
        if outcome.status != "succeeded" and outcome.error:
            writer.system(f"run ended {outcome.status}: {outcome.error}")
        self._finish(
            invocation,
            outcome.status,
            outcome.exit_code,
            outcome.error,
            log_bytes=collector.total_bytes,
            truncated=collector.truncated,
        )

    def _finish(
        self,
        invocation: Invocation,
        status: str,
        exit_code: int | None,
        error: str | None,
        **extra: object,
    ) -> None:
        with self.db.session() as session:
            # Revoked before the terminal status is visible: a finished run has no live token.
            gateway_store.revoke_for(session, invocation.id)
            invocation_store.finish(
                session, invocation.id, status=status, exit_code=exit_code, error=error, **extra
            )
