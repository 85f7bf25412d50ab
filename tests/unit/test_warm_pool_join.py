"""A run that finds its version's pool starting a container, and none ready, waits for that
container rather than start a second beside it (``WarmPool.take``): the two would share
the cores and slow each other (a new version's first run on a worker took 208-247 ms when
the pool's first fill ran beside it, 151-161 ms alone, in ``python -m bench cluster``).

The engine's start of the pool's container is held at a gate, so each test decides when
the fill ends; nothing here depends on how fast the machine is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from executor.engine.fake import FakeEngine, scripted
from executor.run import warm_pool
from executor.run.containers import StartedContainer
from executor.run.sandbox import Sandbox
from executor.run.warm_pool import WarmPool
from executor.settings import SandboxProfile
from executor.store.db import Database
from tests.fake_world import eventually, fake_settings

IMAGE = "plugin:1"


@dataclass
class Gated:
    """A pool whose engine holds every container start until ``gate`` is set."""

    pool: WarmPool
    engine: FakeEngine
    profile: SandboxProfile
    begun: threading.Event  # a start reached the engine
    gate: threading.Event

    def take(self, run_id: str) -> StartedContainer | None:
        return self.pool.take("v1", IMAGE, self.profile, run_id)

    def fill_begun(self) -> None:
        """A first run started cold and its handler started: the pool starts its
        replacement, which is held at the gate."""
        assert self.take("run-1") is None
        self.pool.refill("v1", "run-1")
        assert self.begun.wait(30), "the pool never began its fill"

    def waiting(self) -> int:
        with self.pool._lock:
            return len(self.pool._pools["v1"].waiting)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Gated]:
    fake = fake_settings(tmp_path)
    settings = fake.model_copy(update={"warm_pool": fake.warm_pool.model_copy(update={"size": 1})})
    db = Database(settings.resolved_database_url)
    engine = FakeEngine()
    engine.images.add(IMAGE, scripted("hello"), scripted("hello"), scripted("hello"))
    begun, gate = threading.Event(), threading.Event()
    real_start = engine.containers.start

    def held_start(container_id: str) -> None:
        begun.set()
        assert gate.wait(30), "the test never opened the gate"
        real_start(container_id)

    engine.containers.start = held_start  # type: ignore[method-assign]
    pool = WarmPool(db, Sandbox(engine, settings.sandbox), settings)  # its thread not started
    try:
        yield Gated(pool, engine, settings.sandbox, begun, gate)
    finally:
        gate.set()
        pool.stop()
        db.dispose()


def test_a_run_waits_for_the_container_its_pool_is_starting(gated: Gated) -> None:
    gated.fill_begun()
    with ThreadPoolExecutor(1) as threads:
        taking: Future[StartedContainer | None] = threads.submit(gated.take, "run-2")
        eventually(lambda: gated.waiting() == 1, "the run to wait for the pool's container")
        assert not taking.done()
        gated.gate.set()
        taken = taking.result(timeout=30)

    assert taken is not None
    # The fill's container, the only one the engine made after the first run's: nothing
    # was started beside it, and the pool keeps nothing ready (the run took it).
    assert list(gated.engine.containers.held) == [taken.container_id]
    assert gated.pool.counts() == {"v1": 0}
    assert gated.waiting() == 0


def test_a_run_starts_its_own_when_the_pools_start_fails(gated: Gated) -> None:
    gated.fill_begun()
    gated.engine.fail("containers.start")  # the held start fails once let through
    with ThreadPoolExecutor(1) as threads:
        taking = threads.submit(gated.take, "run-2")
        eventually(lambda: gated.waiting() == 1, "the run to wait for the pool's container")
        gated.gate.set()
        assert taking.result(timeout=30) is None  # the caller starts a cold one
    assert gated.waiting() == 0


def test_only_one_run_waits_for_each_container_being_started(gated: Gated) -> None:
    gated.fill_begun()
    with ThreadPoolExecutor(2) as threads:
        first = threads.submit(gated.take, "run-2")
        eventually(lambda: gated.waiting() == 1, "the run to wait for the pool's container")
        # A second run finds the one container being started promised: it starts its own.
        assert gated.take("run-3") is None
        gated.gate.set()
        assert first.result(timeout=30) is not None


def test_a_run_that_waited_too_long_starts_its_own_and_the_container_stays_in_the_pool(
    gated: Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warm_pool, "JOIN_WAIT_S", 0.01)
    gated.fill_begun()

    assert gated.take("run-2") is None  # the gate is still shut: the wait ran out
    assert gated.waiting() == 0
    gated.gate.set()
    eventually(lambda: gated.pool.counts() == {"v1": 1}, "the pool's container to stay in the pool")
