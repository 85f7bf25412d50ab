"""After a push: the live nodes pull the image before the version becomes ACTIVE.

A version's first run on a node that lacks its image waits for the pull (a few hundred
milliseconds over a LAN, more for a large image) on the event's path. So a build that
pushed records the digest while the version is still DEPLOYING and announces it
(``executor.store.distribution``); each node's pre-puller pulls it and records that it
holds it. The build waits for the nodes live at the push, up to
``registry_distribute_timeout_s``, saying in its log which node holds it when. A node
that did not pull it in time, or one that joined later, pulls it at its first run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from executor.buildlog import seconds, step_line
from executor.engine import BuildInterrupted, Engine
from executor.store import distribution
from executor.store.db import Database

__all__ = ["POLL_S", "Distribution"]

POLL_S = 0.05  # how often the build reads which nodes hold the image while it waits


class Distribution:
    """``wait`` for the live nodes to hold a pushed version's image."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        timeout_s: float,
        stale_after_s: float,
        stopping: threading.Event,
    ) -> None:
        """``stale_after_s``: a node silent longer is not waited for (the lease TTL)."""
        self.db = db
        self.engine = engine
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self.stopping = stopping

    def wait(
        self,
        version_id: str,
        digest: str,
        note: Callable[[str], None],
        on_pushed: Callable[[], object] = lambda: None,
    ) -> None:
        """Record and announce the push, wake this process's pre-puller (``on_pushed``),
        and return once every live node holds the image, or after the timeout (it says
        which did not). ``BuildInterrupted`` when the executor stops meanwhile."""
        with self.db.session() as session:
            distribution.pushed(session, version_id, digest)
            if self.engine.node_id is not None and self.engine.images.exists(digest):
                # This node built it: it holds it, as its engine says.
                distribution.record_held(session, version_id, self.engine.node_id)
            nodes = distribution.live_nodes(session, self.stale_after_s)
        on_pushed()
        if not nodes or self.timeout_s <= 0:
            return
        note(step_line(f"Waiting for {len(nodes)} node(s) to pull it: {', '.join(nodes)}"))
        started = time.monotonic()
        missing = self._await(version_id, set(nodes), started, note)
        if missing:
            note(
                f"Not pulled within {seconds(self.timeout_s)} by {', '.join(sorted(missing))}: "
                "their first run of this version pulls it\n"
            )
        else:
            note(f"Every node holds it after {seconds(time.monotonic() - started)}\n")

    def _await(
        self, version_id: str, waited: set[str], started: float, note: Callable[[str], None]
    ) -> set[str]:
        """The nodes of ``waited`` that still lack the image at the timeout (none: all
        hold it); each one that holds it noted as it is seen."""
        missing = set(waited)
        while True:
            with self.db.session() as session:
                held = distribution.held_by(session, version_id) & missing
            for node in sorted(held):
                note(f"  {node} holds it ({seconds(time.monotonic() - started)})\n")
            missing -= held
            if not missing or time.monotonic() - started >= self.timeout_s:
                return missing
            if self.stopping.wait(POLL_S):
                raise BuildInterrupted("the executor is stopping")
