"""Pulls pushed images before their first event needs them (with a registry only).

The versions activations run now (``image_store.active_versions``) and the versions whose
builds pushed them and wait for the nodes (``distribution.distributing``) are pulled by
digest when this engine lacks them: at start, when a build pushed one (``wake``: a builder
``on_pushed`` callback in this process, the ``VERSION_CHANNEL`` announcement from
another), and every ``PREPULL_INTERVAL_S`` (which covers activations, rollbacks and pins
made meanwhile). This node records that it holds each waiting one, which lets its build
make it ACTIVE. A run whose image is still missing pulls it itself.
"""

from __future__ import annotations

import logging

from executor.engine import Engine
from executor.errors import ExecutorError
from executor.periodic import Periodic
from executor.registry import Registry
from executor.store import distribution
from executor.store import images as image_store
from executor.store.db import Database

__all__ = ["Prepuller"]

log = logging.getLogger(__name__)

PREPULL_INTERVAL_S = 5.0  # how often the activations' images are checked on this engine


class Prepuller:
    """``prepull()`` once, or ``start()`` a thread that keeps doing it until ``stop()``."""

    def __init__(self, db: Database, engine: Engine, registry: Registry) -> None:
        self.db = db
        self.engine = engine
        self.registry = registry
        self.keeper = Periodic("pre-pull", self.prepull, PREPULL_INTERVAL_S, log)

    def prepull(self) -> list[str]:
        """Pull every waiting version's and every activation's pushed image this engine
        lacks, the waiting ones first, recording that this node holds the waiting ones
        (once: a version recorded is not waiting for this node any more); the references
        pulled."""
        node_id = self.engine.node_id
        with self.db.session() as session:
            waiting = [(v.id, v.image_digest) for v in distribution.distributing(session, node_id)]
            active = [v.image_digest for v in image_store.active_versions(session)]
        pulled: list[str] = []
        for version_id, reference in waiting:
            if self._hold(reference, pulled) and node_id is not None:
                with self.db.session() as session:
                    distribution.record_held(session, version_id, node_id)
        for reference in active:
            self._hold(reference, pulled)
        return pulled

    def _hold(self, reference: str | None, pulled: list[str]) -> bool:
        """Whether this engine holds ``reference`` now, pulling it if it lacks it (and
        adding it to ``pulled``)."""
        if reference is None:
            return False
        if self.engine.images.exists(reference):
            return True
        try:
            self.registry.pull(self.engine, reference)
        except ExecutorError as exc:  # the run pulls again, or reports why it cannot
            log.warning("pre-pull: %s", exc.message)
            return False
        pulled.append(reference)
        return True

    def start(self) -> None:
        self.keeper.start()

    def wake(self, *_: object) -> None:
        """A version was pushed: pull now (a builder ``on_pushed`` callback, or the
        ``VERSION_CHANNEL`` announcement; None, a listener reconnected, too)."""
        self.keeper.wake()

    def stop(self) -> None:
        self.keeper.stop()
