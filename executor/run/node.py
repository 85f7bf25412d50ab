"""This process as a node of the cluster: its id, what it can run, its heartbeat.

Every dispatching process is a node: it registers (engine version, runtimes, capacity,
labels) at start and heartbeats with its lease renewals. While beating it also marks lost
the nodes silent past the lease TTL, whose runs' leases then expire and are re-queued.
A drained node claims nothing new. Heartbeats and leases are stamped by the database's
clock; each beat also measures how far this node's clock is off from it, and warns.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime

from executor.engine import Engine
from executor.errors import ExecutorError
from executor.settings import Settings
from executor.statuses import NodeState
from executor.store import nodes as node_store
from executor.store.claims import NodeClaim
from executor.store.clock import database_now
from executor.store.db import Database
from executor.store.tables import utcnow

__all__ = ["NodeMembership", "node_id_for"]

log = logging.getLogger(__name__)


class UnknownRuntime(ExecutorError):
    """EXECUTOR_NODE_RUNTIMES names a runtime the engine does not have."""

    code = "unknown_runtime"


def node_id_for(settings: Settings, engine: Engine) -> str:
    """The setting, else ``hostname-<short engine id>``: stable across restarts of a
    process on the same engine, so a restarted node adopts its own runs."""
    return settings.nodes.id or f"{socket.gethostname()}-{engine.info().short_id}"


class NodeMembership:
    """Registers this node and keeps its heartbeat; ``claim`` describes it to the claim."""

    def __init__(self, db: Database, engine: Engine, settings: Settings, instance: str) -> None:
        self.db = db
        self.engine = engine
        self.settings = settings
        self.instance = instance
        self.state: str | None = None
        self.claim: NodeClaim | None = None
        self.skewed = False  # warned that this node's clock is off
        self.skew_s: float | None = None  # the last skew measured with a short round trip

    def join(self) -> NodeClaim:
        """Register as ready; labels what the engine creates from now on with the node id."""
        info = self.engine.info()
        runtimes = self._runtimes(info.runtimes)
        node_id = node_id_for(self.settings, self.engine)
        self.engine.identify(self.engine.scope, node_id)
        with self.db.session() as session:
            node_store.register(
                session,
                node_store.NodeInfo(
                    id=node_id,
                    instance=self.instance,
                    engine_version=info.version,
                    runtimes=runtimes,
                    max_concurrent_runs=self.settings.runs.max_concurrent_runs,
                    warm_pool_memory_mib=self.settings.warm_pool.memory_budget_mib,
                    labels=self.settings.nodes.labels,
                ),
            )
        self.state = NodeState.READY
        self.claim = NodeClaim(
            node_id,
            frozenset(runtimes),
            self.settings.nodes.labels,
            self.settings.sandbox.oci_runtime,
        )
        log.info("node %s ready: runtimes %s", node_id, ", ".join(runtimes))
        return self.claim

    def _runtimes(self, available: list[str]) -> list[str]:
        wanted = self.settings.nodes.runtimes
        if wanted is None:
            return available
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise UnknownRuntime(
                f"EXECUTOR_NODE_RUNTIMES names {', '.join(missing)}, which this Docker Engine "
                f"does not have (it has {', '.join(available)}): name only those"
            )
        return sorted(set(wanted))

    @property
    def takes_runs(self) -> bool:
        """False once the node is draining (or its id was taken over by another process)."""
        return self.state == NodeState.READY

    def _changed(self, state: str | None) -> None:
        assert self.claim is not None
        if state is None:
            log.error(
                "node id %s was taken over by another process: this one claims nothing more; "
                "give each process on one Docker Engine its own EXECUTOR_NODE_ID",
                self.claim.node_id,
            )
        else:
            log.warning("node %s is now %s", self.claim.node_id, state)
        self.state = state

    def publish_warm(self, counts: dict[str, int]) -> None:
        """Tell the store which versions this node holds warm containers of (placement)."""
        if self.claim is not None:
            with self.db.session() as session:
                node_store.publish_warm(session, self.claim.node_id, self.instance, counts)

    def beat(self) -> list[str]:
        """Heartbeat; mark the silent nodes lost (their leases expire now). Returns the ids
        of the nodes marked lost."""
        assert self.claim is not None, "join first"
        with self.db.session() as session:
            measured = _clock_skew(
                utcnow(), database_now(session), utcnow(), self.settings.nodes.clock_skew_warn_s
            )
            skew = self.skew_s if measured is None else measured
            revive_as = self.state if self.state == NodeState.DRAINING else NodeState.READY
            state = node_store.heartbeat(
                session, self.claim.node_id, self.instance, revive_as, skew
            )
            lost = node_store.mark_lost(session, self.settings.runs.lease_s)
        if measured is not None:
            self.skew_s = measured
            self._note_skew(measured)
        if state != self.state:
            self._changed(state)
        for node_id in lost:
            log.warning(
                "node %s is lost: no heartbeat for %g s", node_id, self.settings.runs.lease_s
            )
        return lost

    def _note_skew(self, skew: float) -> None:
        """Warn when this node's clock goes off from the database's (once: ``nodes`` shows
        the skew of every beat), and say when it is back."""
        assert self.claim is not None
        skewed = abs(skew) > self.settings.nodes.clock_skew_warn_s
        if skewed and not self.skewed:
            log.warning(
                "node %s: this host's clock is %+.1f s off the database's (more than "
                "EXECUTOR_CLOCK_SKEW_WARN_S=%g): leases use the database's clock, but times "
                "this node records (run start, logs) are off; sync the clock (NTP)",
                self.claim.node_id,
                skew,
                self.settings.nodes.clock_skew_warn_s,
            )
        elif self.skewed and not skewed:
            log.info(
                "node %s: this host's clock is back within EXECUTOR_CLOCK_SKEW_WARN_S of the "
                "database's (%+.1f s)",
                self.claim.node_id,
                skew,
            )
        self.skewed = skewed


def _clock_skew(
    before: datetime, database: datetime, after: datetime, tolerance_s: float
) -> float | None:
    """How far this host's clock is ahead of the database's (seconds; negative: behind):
    ``database`` was read between this host's ``before`` and ``after``, so it is compared
    with their middle (off by at most half the round trip). None when half the round trip
    is over ``tolerance_s``: a read that waited out a partition or a paused database says
    nothing of the clocks, and would be taken for a skew."""
    if (after - before).total_seconds() / 2 > tolerance_s:
        return None
    return round(((before - database) + (after - database)).total_seconds() / 2, 3)
