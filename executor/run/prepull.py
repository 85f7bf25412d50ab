"""Pulls pushed images before their first event needs them (with a registry only).

The versions activations run now (``image_store.active_versions``) are pulled by digest
when this engine lacks them: at start, when a build became ACTIVE (``wake``, a builder
``on_active`` callback), and every ``PREPULL_INTERVAL_S`` (which covers activations,
rollbacks and pins made meanwhile). A run whose image is still missing pulls it itself.
"""

from __future__ import annotations

import logging

from executor.engine import Engine
from executor.errors import ExecutorError
from executor.periodic import Periodic
from executor.registry import Registry
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
        """Pull every activation's pushed image this engine lacks; the references pulled."""
        with self.db.session() as session:
            wanted = [v.image_digest for v in image_store.active_versions(session)]
        pulled = []
        for reference in wanted:
            if reference is None or self.engine.images.exists(reference):
                continue
            try:
                self.registry.pull(self.engine, reference)
            except ExecutorError as exc:  # the run pulls again, or reports why it cannot
                log.warning("pre-pull: %s", exc.message)
                continue
            pulled.append(reference)
        return pulled

    def start(self) -> None:
        self.keeper.start()

    def wake(self, *_: object) -> None:
        """A version became ACTIVE: pull now (a builder ``on_active`` callback)."""
        self.keeper.wake()

    def stop(self) -> None:
        self.keeper.stop()
