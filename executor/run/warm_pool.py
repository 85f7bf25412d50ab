"""Single-use warm pools: containers started ahead of their event, one event each.

For each active plugin version the pool keeps ``warm_pool_size`` containers created with
the run's full sandbox profile, started, attached, with the runtime loaded and ``main.py``
imported, blocked reading stdin. An event ``take``s one (the caller then mints the token
and writes the envelope: the deadline starts at that hand-off) and a replacement is
started in the background. An event that finds none ready while one is being started for
its version waits for that one rather than start a second beside it. A taken container is
never put back: it serves one event and is removed like a fresh one.

Pools follow the store (``sync``, run every ``SYNC_INTERVAL_S`` and on ``wake``): a pool
whose version is no longer what some activation runs (deactivated, new version, rollback)
or whose plugin limits changed is emptied; a pool unused for ``warm_pool_idle_s`` is
emptied until its next event; a container that waited longer than the run's wall time is
replaced. The memory limits of all warm containers together stay
within ``warm_pool_memory_budget_mib``.

Each change of the ready counts is handed to ``on_change`` (from the pool's own thread, so
a take never waits on it): the node publishes them for warm-aware placement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from executor.errors import ExecutorError
from executor.periodic import Periodic
from executor.registry import Registry
from executor.run.containers import StartedContainer
from executor.run.limits import effective_profile
from executor.run.pulling import start_pulling
from executor.run.sandbox import Sandbox
from executor.settings import SandboxProfile, Settings
from executor.store import images as image_store
from executor.store.db import Database

__all__ = ["WarmPool"]

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 1.0  # how often pools are matched to the store's activations
FILL_THREADS = 2  # containers started in the background at once
# How long a run waits for the container its pool is starting before it starts its own:
# a bound for an engine that hangs, far above a start (about 0.15 s; a pull, longer).
JOIN_WAIT_S = 10.0

# A run waiting for the container its pool is starting: given it, or None (start your own).
_Waiter = Future[StartedContainer | None]


@dataclass
class _VersionPool:
    """The warm containers of one plugin version."""

    image: str
    profile: SandboxProfile
    ready: list[StartedContainer] = field(default_factory=list)
    starting: int = 0  # planned fills, begun or queued
    filling: int = 0  # of those, the ones begun
    # Runs waiting for a begun fill's container, at most one per begun fill.
    waiting: list[_Waiter] = field(default_factory=list)
    # The runs that took a container, or found none and start a cold one, whose handler
    # has not started yet: what they took (or would have) is replaced once it has
    # (``WarmPool.refill``), not before.
    lent: set[str] = field(default_factory=set)
    last_used: float = field(default_factory=time.monotonic)
    idle: bool = False  # emptied for idleness: not refilled until its next event

    @property
    def count(self) -> int:
        return len(self.ready) + self.starting

    def tidy(self, now: float, idle_s: float) -> list[StartedContainer]:
        """What to remove (lock held): all of a pool unused for ``idle_s``, which then
        stays empty until its next event, else the containers that waited too long."""
        if not self.idle and now - self.last_used > idle_s:
            self.idle = True
            emptied, self.ready = self.ready, []
            return emptied
        return self.expire(now)

    def deliver(self, started: StartedContainer | None) -> StartedContainer | None:
        """A begun fill ended with ``started`` (None: it failed; lock held): it goes to
        the first waiting run, if any, and what is left over is returned. Waiting runs
        beyond the fills still under way are told to start their own."""
        self.filling -= 1
        if started is not None and self.waiting:
            self.waiting.pop(0).set_result(started)
            started = None
        while len(self.waiting) > self.filling:
            self.waiting.pop().set_result(None)
        return started

    def expire(self, now: float) -> list[StartedContainer]:
        """Take out containers that waited longer than the run's wall time (lock held).

        The plugin's import-time code runs while a container waits, outside the deadline's
        watchdog: replacing old ones bounds how long untrusted code runs unobserved.
        """
        old = [c for c in self.ready if now - c.started_monotonic > self.profile.timeout_s]
        self.ready = [c for c in self.ready if c not in old]
        return old


def _used_mib(pools: dict[str, _VersionPool]) -> int:
    """The memory limits of the pools' containers, ready and starting, together."""
    return sum(pool.count * pool.profile.memory_mib for pool in pools.values())


def wanted_pools(db: Database, operator: SandboxProfile) -> dict[str, tuple[str, SandboxProfile]]:
    """Per version id that some activation runs: its image and its run's profile
    (``operator``'s, tightened by the plugin's limits)."""
    with db.session() as session:
        return {
            version.id: (str(version.run_image), effective_profile(operator, version.plugin.limits))
            for version in image_store.active_versions(session)
        }


class WarmPool:
    """Keeps and hands out warm containers; with ``warm_pool_size`` 0 it does nothing."""

    def __init__(self, db: Database, sandbox: Sandbox, settings: Settings) -> None:
        self.db = db
        self.sandbox = sandbox
        self.settings = settings
        self.size = settings.warm_pool.size
        self.registry = Registry.configured(settings.images)
        self.budget_mib = settings.warm_pool.memory_budget_mib
        self._pools: dict[str, _VersionPool] = {}
        self._lock = threading.Lock()
        self._filler = ThreadPoolExecutor(FILL_THREADS, "warm-fill")
        # Matches the pools to the store and publishes their counts; woken to publish.
        self.keeper = Periodic("warm pool", self._sync_and_publish, SYNC_INTERVAL_S, log)
        self.on_change: Callable[[dict[str, int]], None] = lambda counts: None
        self._published: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def start(self) -> None:
        """Fill the pools and keep them matched to the store."""
        if self.enabled:
            self.keeper.start()

    def wake(self, *_: object) -> None:
        """Activations or versions changed: match the pools now (a builder ``on_active``
        callback)."""
        self.keeper.wake()

    def stop(self) -> None:
        """Stop filling and remove every warm container."""
        self.keeper.stop()
        self._filler.shutdown(wait=True)
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            self._discard(pool.ready)

    def take(
        self, version_id: str, image: str, profile: SandboxProfile, run_id: str
    ) -> StartedContainer | None:
        """A warm container of this version for run ``run_id`` (None: start a cold one).
        The caller owns what it gets, and calls ``refill`` once the plugin has its event
        (or the attempt ended), warm or cold: starting a container (a create and a start of
        the engine, about a hundred milliseconds of CPU) beside the run's own start slowed
        it, the warm hand-off by milliseconds and a cold start by a third (a new version's
        first run on a worker: 195 ms against 150 ms without a pool). Until then the
        periodic ``sync`` counts what the run took, or would have, as the pool's.
        """
        if not self.enabled:
            return None
        stale: list[StartedContainer] = []
        taken: StartedContainer | None = None
        waiter: _Waiter | None = None
        with self._lock:
            pool = self._pools.get(version_id)
            if pool is None or pool.image != image or pool.profile != profile:
                stale = self._forget(version_id)
                pool = self._pools[version_id] = _VersionPool(image, profile)
            pool.last_used, pool.idle = time.monotonic(), False
            pool.lent.add(run_id)
            if pool.ready:
                taken = pool.ready.pop(0)
            elif pool.filling > len(pool.waiting):
                # One is being started (a version just activated, a refill under way):
                # it is ready sooner than a second started now beside it, which would
                # share the cores with it and slow both.
                waiter = _Waiter()
                pool.waiting.append(waiter)
        if taken is None:
            self.keeper.wake()  # publish the new count
        # Else it is published by ``refill``: the pool's thread writes the node's warm set,
        # and that write beside the hand-off's (one writer at a time on SQLite) held the
        # hand-off up.
        self._discard(stale)
        if waiter is not None:
            taken = self._join(pool, waiter)
        # A warm container may have died while it waited (killed from outside, engine
        # restart): that event then starts cold rather than fail.
        if taken is not None and not self.sandbox.is_running(taken):
            self._discard([taken])
            return None
        return taken

    def _join(self, pool: _VersionPool, waiter: _Waiter) -> StartedContainer | None:
        """The container of ``pool``'s begun fill that ``waiter`` was given, or None (the
        fill failed, or took longer than ``JOIN_WAIT_S``: the run starts its own)."""
        try:
            return waiter.result(JOIN_WAIT_S)
        except TimeoutError:
            with self._lock:
                if waiter in pool.waiting:
                    pool.waiting.remove(waiter)
                    return None
            return waiter.result()  # given it just after the wait ran out

    def refill(self, version_id: str, run_id: str) -> None:
        """Run ``run_id``'s handler started, or its attempt ended: start what the pool
        lacks. Once per run; a second call, or one for a run that took nothing of the
        pool, is a no-op."""
        with self._lock:
            pool = self._pools.get(version_id)
            if pool is not None and run_id in pool.lent:
                pool.lent.discard(run_id)
                self._plan_fill(version_id, pool)
        self.keeper.wake()  # publish the count without the taken container

    def counts(self) -> dict[str, int]:
        """Ready containers per version id."""
        with self._lock:
            return {version_id: len(pool.ready) for version_id, pool in self._pools.items()}

    def sync(self) -> None:
        """Match the pools to the versions activations run now; fill what is missing."""
        wanted = wanted_pools(self.db, self.settings.sandbox)
        stale: list[StartedContainer] = []
        now = time.monotonic()
        with self._lock:
            for version_id, pool in list(self._pools.items()):
                target = wanted.get(version_id)
                if target is None or target != (pool.image, pool.profile):
                    stale += self._forget(version_id)
                else:
                    stale += pool.tidy(now, self.settings.warm_pool.idle_s)
            for version_id, (image, profile) in wanted.items():
                pool = self._pools.setdefault(version_id, _VersionPool(image, profile))
                self._plan_fill(version_id, pool)
        self._discard(stale)

    def _sync_and_publish(self) -> None:
        self.sync()
        self._publish()

    def _publish(self) -> None:
        counts = {version_id: count for version_id, count in self.counts().items() if count}
        if counts != self._published:
            self.on_change(counts)
            self._published = counts

    def _plan_fill(self, version_id: str, pool: _VersionPool) -> None:
        """Start containers until the pool is full or the budget is used (lock held)."""
        while (
            not pool.idle
            and not self.keeper.stopping
            and pool.count + len(pool.lent) < self.size
            and _used_mib(self._pools) + pool.profile.memory_mib <= self.budget_mib
        ):
            pool.starting += 1
            self._filler.submit(self._fill_one, version_id, pool)

    def _fill_one(self, version_id: str, pool: _VersionPool) -> None:
        started: StartedContainer | None = None
        with self._lock:
            pool.filling += 1
        try:
            # A pushed version new to this engine is pulled by the fill (the pre-puller
            # may not have come to it yet): a pool is warm as soon as its image is here.
            started = start_pulling(
                self.sandbox, self.registry, pool.image, pool.profile, pool=version_id
            )
        except ExecutorError as exc:
            log.warning("warm pool: could not start a container of %s: %s", pool.image, exc)
        with self._lock:
            pool.starting -= 1
            if self.keeper.stopping:
                pool.deliver(None)  # the waiting runs start their own; this one is removed
            else:
                # A waiting run takes it even if the pool was dropped meanwhile: the run was
                # claimed for this image and profile, and needs a container of them.
                started = pool.deliver(started)
                current = self._pools.get(version_id) is pool and not pool.idle
                if started is not None and current:
                    pool.ready.append(started)
                    started = None
                    self.keeper.wake()  # publish the new count
        if started is not None:  # the pool was emptied or stopped meanwhile
            self._discard([started])

    def _forget(self, version_id: str) -> list[StartedContainer]:
        """Drop a pool; its ready containers are returned for removal (lock held)."""
        pool = self._pools.pop(version_id, None)
        return pool.ready if pool is not None else []

    def _discard(self, containers: list[StartedContainer]) -> None:
        for started in containers:
            self.sandbox.discard(started)
