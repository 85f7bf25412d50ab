"""Event ingest: one commit stores each event with a queued invocation per matching plugin."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from executor.errors import Conflict, ExecutorError, NotFound
from executor.schemas.events import EventIn
from executor.service.catalog import activation_events
from executor.store import ingest as ingest_store
from executor.store import versions as version_store
from executor.store.db import Connection, Database
from executor.tenancy.access import Caller

__all__ = ["EventIntake", "Ingested"]

# Events one commit holds at most (one statement on PostgreSQL: its size stays bounded).
MAX_BATCH = 256


@dataclass(frozen=True)
class Ingested:
    event_id: str
    invocation_ids: list[str]
    created: bool  # False when the idempotency key was seen before


def _event_tenant(caller: Caller, project_id: str, owner: str | None) -> str:
    """The tenant whose plugins the event runs: its project's (``owner``). A tenant key may
    only post for its own projects (NotFound otherwise); the operator for any."""
    if owner == caller.tenant_id or (caller.is_operator and owner is not None):
        return owner
    if caller.is_operator:  # a project no tenant has: nothing is active on it
        return caller.tenant_id
    raise NotFound(
        f"no project {project_id!r} for tenant {caller.tenant_id!r}: the operator assigns "
        "projects to tenants"
    )


def _first_post(connection: Connection, event_id: str, tenant_id: str) -> Ingested | None:
    """The answer to an event id seen before (Conflict if another tenant's); None if new."""
    first = ingest_store.stored_event(connection, event_id)
    if first is None:
        return None
    first_tenant, ids = first
    if first_tenant != tenant_id:
        raise Conflict(f"event id {event_id!r} is taken: send another idempotency key")
    return Ingested(event_id, ids, created=False)


def _runs(
    event_type: str, activations: list[ingest_store.ProjectActivation]
) -> list[tuple[ingest_store.ProjectActivation, ingest_store.RunnableVersion]]:
    """Each activation that runs on ``event_type``, with the version it runs."""
    runs = []
    for activation in activations:
        version = version_store.pick_version(
            activation.versions, activation.current_version_id, activation.version_number
        )
        if version is None:
            continue
        if any(fnmatchcase(event_type, p) for p in activation_events(activation, version)):
            runs.append((activation, version))
    return runs


def _prepare(
    connection: Connection,
    states: dict[str, ingest_store.ProjectState],
    caller: Caller,
    event_in: EventIn,
) -> Ingested | tuple[str, ingest_store.EventRows]:
    """The answer to an id seen before, or (tenant, rows to write) for a new event.
    ``states`` holds the project states read for this batch: events of one project posted
    at the same time read it once."""
    project = states.get(event_in.project_id)
    if project is None:
        project = states[event_in.project_id] = ingest_store.project_state(
            connection, event_in.project_id
        )
    tenant_id = _event_tenant(caller, event_in.project_id, project.tenant_id)
    if event_in.id is not None and (first := _first_post(connection, event_in.id, tenant_id)):
        return first
    event = ingest_store.new_event(
        event_id=event_in.id,
        tenant_id=tenant_id,
        type=event_in.type,
        project_id=event_in.project_id,
        asset_id=event_in.asset_id,
    )
    runs = _runs(event_in.type, project.activations)
    return tenant_id, ingest_store.event_rows(event, event_in.label, event_in.payload, runs)


@dataclass
class _Post:
    caller: Caller
    event_in: EventIn
    answer: Future[Ingested] = field(default_factory=Future)


class EventIntake:
    """Stores the events the platform posts, from one thread, those posted at the same
    time together: each batch reads what it needs on one connection and writes its new
    events with their invocations in one commit (``ingest_store.write_events``).

    A profile of ingest under load showed the cost around the SQL more than the SQL: a
    worker thread, two pooled connections and a lock handoff per event. One thread that
    takes whatever queued while it wrote, on a connection it keeps while batches follow
    one another, pays each once per batch. An answer is set only after the commit that
    holds its rows (nothing answered is ever lost); a post that fails, fails alone.
    """

    def __init__(self, db: Database, on_stored: Callable[[Ingested], None]) -> None:
        self._db = db
        self._on_stored = on_stored
        self._changed = threading.Condition()
        self._queued: list[_Post] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def queued(self) -> int:
        """Posts waiting for the intake thread."""
        with self._changed:
            return len(self._queued)

    def submit(self, caller: Caller, event_in: EventIn) -> Future[Ingested]:
        """Queue one event: its answer once committed (the error if it fails)."""
        post = _Post(caller, event_in)
        with self._changed:
            if self._stopping:
                raise RuntimeError("the event intake is stopped")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-intake", daemon=True)
                self._thread.start()
            self._queued.append(post)
            self._changed.notify()
        return post.answer

    def stop(self) -> None:
        """Store what is queued, then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _take(self, *, wait: bool) -> list[_Post] | None:
        """The next batch: what is queued (waiting for it with ``wait``), less the posts
        whose caller gave up before their turn (never stored, never answered). None once
        stopped with nothing queued."""
        with self._changed:
            while wait and not self._queued and not self._stopping:
                self._changed.wait()
            if wait and not self._queued:
                return None
            batch = self._queued[:MAX_BATCH]
            del self._queued[:MAX_BATCH]
        return [post for post in batch if post.answer.set_running_or_notify_cancel()]

    def _run(self) -> None:
        batch = self._take(wait=True)
        while batch is not None:
            try:
                # Batches that follow one another share a connection: checking one out
                # and back in per batch cost more than its SQL. An idle intake holds none,
                # and one the store dropped is left for a new one.
                with self._db.autocommit_connection() as connection:
                    while batch and not connection.invalidated:
                        self._store(connection, batch)
                        batch = self._take(wait=False)
            except Exception as error:  # the store failed: the batch's posts hear of it
                for post in batch or []:
                    if not post.answer.done():
                        post.answer.set_exception(error)
                batch = []
            if not batch:
                batch = self._take(wait=True)

    def _store(self, connection: Connection, batch: list[_Post]) -> None:
        """Store ``batch`` and answer each post; raises only when the store fails before
        anything of the batch is written (its unanswered posts then hear of it)."""
        writes: list[tuple[_Post, str, ingest_store.EventRows]] = []
        states: dict[str, ingest_store.ProjectState] = {}
        for post in batch:
            try:
                prepared = _prepare(connection, states, post.caller, post.event_in)
            except ExecutorError as error:  # this post's own (no such project, id taken)
                post.answer.set_exception(error)
                continue
            if isinstance(prepared, Ingested):
                post.answer.set_result(prepared)
            else:
                writes.append((post, *prepared))
        outcomes = ingest_store.write_events(self._db, connection, [rows for _, _, rows in writes])
        written = list(zip(writes, outcomes, strict=True))
        # What was committed is answered first: nothing after may keep it unanswered.
        for (post, _, rows), failure in written:
            if failure is None:
                ingested = Ingested(rows.event["id"], rows.invocation_ids, created=True)
                post.answer.set_result(ingested)
                self._on_stored(ingested)
        for (post, tenant_id, _), failure in written:
            if isinstance(failure, ingest_store.EventIdTaken):
                _answer_taken(connection, post, tenant_id, failure)
            elif failure is not None:
                post.answer.set_exception(failure)


def _answer_taken(
    connection: Connection, post: _Post, tenant_id: str, error: ingest_store.EventIdTaken
) -> None:
    """The same id was posted at the same time and the other post's write came first:
    answer with that post's invocations (Conflict if it was another tenant's)."""
    assert post.event_in.id is not None  # only a given id can clash
    try:
        first = _first_post(connection, post.event_in.id, tenant_id)
    except Exception as failure:
        post.answer.set_exception(failure)
        return
    if first is None:
        post.answer.set_exception(error)
    else:
        post.answer.set_result(first)
