"""A taken warm container changes the node's published warm set only once its handler has
started (``WarmPool.refill``): the pool's thread writes that set, and the write beside the
hand-off's (one writer at a time on SQLite) held the hand-off up (token phase 4.2 -> 1.2 ms
mean in ``python -m bench --section starts``). A run that found the pool empty starts cold
with nothing started beside it: the fill waits for its handler too."""

from __future__ import annotations

from pathlib import Path

from executor.engine.fake import FakeEngine, scripted
from executor.run.sandbox import Sandbox
from executor.run.warm_pool import WarmPool
from executor.store.db import Database
from tests.fake_world import eventually, fake_settings

IMAGE = "plugin:1"


def test_the_pool_fills_and_publishes_only_once_the_runs_handler_started(
    tmp_path: Path,
) -> None:
    fake = fake_settings(tmp_path)
    settings = fake.model_copy(update={"warm_pool": fake.warm_pool.model_copy(update={"size": 1})})
    db = Database(settings.resolved_database_url)
    engine = FakeEngine()
    engine.images.add(IMAGE, scripted("hello"))
    pool = WarmPool(db, Sandbox(engine, settings.sandbox), settings)  # its thread not started
    profile = settings.sandbox
    try:
        assert pool.take("v1", IMAGE, profile, "run-1") is None  # empty: the run starts cold
        # Nothing planned beside that cold start (a fill is planned under the pool's lock).
        assert pool._pools["v1"].starting == 0
        assert engine.containers.held == {}
        pool.refill("v1", "run-1")  # its handler started: now the fill
        eventually(lambda: pool.counts().get("v1") == 1, "the fill to make a warm container")
        pool.keeper.woken.clear()  # what the thread would do before its next sync

        taken = pool.take("v1", IMAGE, profile, "run-2")

        assert taken is not None
        assert not pool.keeper.woken.is_set()  # nothing published while the event is handed off
        pool.refill("v1", "run-2")
        assert pool.keeper.woken.is_set()
    finally:
        pool.stop()
        db.dispose()
