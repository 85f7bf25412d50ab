"""A dispatcher on a real SQLite store and the in-memory ``FakeEngine``: plugin runs end to
end without a Docker Engine (the fast tier's), each plugin a script."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from executor.engine.fake import FakeEngine, Script
from executor.metrics import Metrics, QueueFigures
from executor.run.dispatcher import Dispatcher
from executor.settings import SandboxProfile, Settings
from executor.statuses import TERMINAL_STATUSES, BuildStatus
from executor.store.db import Database
from executor.store.tables import Event, Invocation, Plugin, PluginVersion

SETTLE_S = 60.0  # generous: the poll ends as soon as the record is there
POLL_S = 0.02
# A run's wall time unless a test is about the deadline: only a script that hangs reaches
# it (a short one timed out a quick script on two loaded cores).
TIMEOUT_S = 60.0


def fake_settings(
    tmp_path: Path, *, timeout_s: float = TIMEOUT_S, drain_s: float = 30.0
) -> Settings:
    """Settings for a dispatcher on the fake engine: short retry delays and polls (the
    runs still end on records, not on time), no warm pool, ``timeout_s`` of wall time per
    run, ``drain_s`` to wait for runs at stop."""
    return Settings(
        data_dir=tmp_path,
        operator_key="pe_op_fake-engine-tests-0123456789",
        retry_base_s=0.01,
        retry_max_s=0.05,
        dispatch_poll_s=0.05,
        warm_pool_size=0,
        drain_timeout_s=drain_s,
        sandbox=SandboxProfile(timeout_s=timeout_s),
    )


def add_plugin_run(db: Database, image: str, *, max_retries: int = 0) -> str:
    """An ACTIVE plugin version whose image is ``image``, an event, and a queued run."""
    with db.session() as session:
        plugin = Plugin(name=image.partition(":")[0])
        session.add(plugin)
        session.flush()
        version = PluginVersion(
            plugin_id=plugin.id,
            number=1,
            source_sha256="x",
            source=b"",
            status=BuildStatus.ACTIVE.value,
            image_tag=image,
        )
        event = Event(type="onSubmit", project_id="fake")
        session.add_all([version, event])
        session.flush()
        run = Invocation(
            event_id=event.id,
            plugin_id=plugin.id,
            version_id=version.id,
            plugin_name=plugin.name,
            version_number=1,
            project_id="fake",
            event_type="onSubmit",
            max_retries=max_retries,
        )
        session.add(run)
        session.flush()
        return run.id


def settled(db: Database, run_id: str) -> Invocation:
    """The run once it is terminal (polled: the dispatcher records it on its threads)."""
    return polled(db, run_id, lambda run: run.status in TERMINAL_STATUSES)


def eventually(check: Callable[[], bool], what: str) -> None:
    """Until ``check()`` holds (something the executor does on its own threads)."""
    give_up = time.monotonic() + SETTLE_S
    while not check():
        assert time.monotonic() < give_up, f"still waiting for {what}"
        time.sleep(POLL_S)


def polled(db: Database, run_id: str, until: Callable[[Invocation], bool]) -> Invocation:
    """The run once ``until`` holds of its record."""
    give_up = time.monotonic() + SETTLE_S
    while True:
        with db.session() as session:
            run = session.get(Invocation, run_id)
            assert run is not None
            if until(run):
                session.expunge(run)
                return run
        assert time.monotonic() < give_up, f"run {run_id} still {run.status}"
        time.sleep(POLL_S)


@contextmanager
def dispatching(
    tmp_path: Path, engine: FakeEngine, settings: Settings | None = None
) -> Iterator[Database]:
    """A started dispatcher on ``engine`` and a fresh store; stopped on the way out."""
    settings = settings or fake_settings(tmp_path)
    db = Database(settings.resolved_database_url)
    db.migrate()
    engine.identify(db.store_id(), None)
    dispatcher = Dispatcher(db, engine, settings, Metrics(lambda: QueueFigures({}, None, {})))
    dispatcher.start()
    try:
        yield db
    finally:
        dispatcher.stop()
        db.dispose()


@contextmanager
def scripted_run(
    tmp_path: Path, *scripts: Script, max_retries: int = 0, timeout_s: float = TIMEOUT_S
) -> Iterator[tuple[Database, Invocation]]:
    """One run of a plugin whose containers run ``scripts`` in turn, ended; its store stays
    open (to read what the run wrote) until the block ends."""
    engine = FakeEngine()
    engine.images.add("scripted:1", *scripts)
    with dispatching(tmp_path, engine, fake_settings(tmp_path, timeout_s=timeout_s)) as db:
        yield db, settled(db, add_plugin_run(db, "scripted:1", max_retries=max_retries))


def run_scripts(
    tmp_path: Path, *scripts: Script, max_retries: int = 0, timeout_s: float = TIMEOUT_S
) -> Invocation:
    """One run of a plugin whose containers run ``scripts`` in turn, to its end."""
    with scripted_run(tmp_path, *scripts, max_retries=max_retries, timeout_s=timeout_s) as (_, run):
        return run
