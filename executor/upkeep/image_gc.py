"""Removes the images of plugin versions no longer kept.

Kept: each plugin's ``Settings.keep_versions`` newest versions, and any version in use
(pinned by an activation, current, or wanted by a queued or running invocation). The engine
itself refuses to remove an image a container uses; such an image is tried again next time.
A removed version stays listed (its source, log and freeze too) but can no longer run.
"""

from __future__ import annotations

import logging
import threading

from executor.engine import Engine
from executor.store import plugins as plugin_store
from executor.store.db import Database

__all__ = ["ImageCollector"]

log = logging.getLogger(__name__)


class ImageCollector:
    """``collect()`` removes what is no longer kept; one collection runs at a time."""

    def __init__(self, db: Database, engine: Engine, keep: int) -> None:
        self.db = db
        self.engine = engine
        self.keep = keep
        self._lock = threading.Lock()

    def collect(self, *_: object) -> list[str]:
        """Remove the images no longer kept; the tags removed."""
        removed: list[str] = []
        with self._lock:
            with self.db.session() as session:
                candidates = [
                    (v.id, v.image_tag)
                    for v in plugin_store.gc_candidates(session, self.keep)
                    if v.image_tag
                ]
            for version_id, tag in candidates:
                if not self._remove(tag):
                    continue
                with self.db.session() as session:
                    plugin_store.mark_image_removed(session, version_id)
                removed.append(tag)
        if removed:
            log.info("image GC removed %d image(s): %s", len(removed), ", ".join(removed))
        return removed

    def _remove(self, tag: str) -> bool:
        if self.engine.remove_image(tag):
            return True
        # Gone already (removed by hand) counts as removed; in use does not.
        return not self.engine.image_exists(tag)
