"""Removes the images of plugin versions no longer kept.

Kept: each plugin's ``Settings.images.keep_versions`` newest versions, and any version in use
(pinned by an activation, current, or wanted by a queued or running invocation). The engine
itself refuses to remove an image a container uses; such an image is tried again next time.
A removed version stays listed (its source, log and freeze too) but can no longer run.

With a registry, a removed version's manifest is deleted from the registry too (HTTP
``DELETE /v2/<name>/manifests/<digest>``; the registry must allow deletes). That frees no
disk by itself: the registry's garbage collection (``docker-registry garbage-collect``,
see docs/scaling.md) removes the blobs no manifest references any more.
"""

from __future__ import annotations

import logging
import threading

from executor.engine import Engine
from executor.errors import ExecutorError
from executor.registry import Registry
from executor.store import images as image_store
from executor.store.db import Database

__all__ = ["ImageCollector"]

log = logging.getLogger(__name__)


class ImageCollector:
    """``collect()`` removes what is no longer kept; one collection runs at a time."""

    def __init__(
        self, db: Database, engine: Engine, keep: int, registry: Registry | None = None
    ) -> None:
        self.db = db
        self.engine = engine
        self.keep = keep
        self.registry = registry
        self._lock = threading.Lock()

    def collect(self, *_: object) -> list[str]:
        """Remove the images no longer kept; the tags removed."""
        removed: list[str] = []
        with self._lock:
            with self.db.session() as session:
                candidates = [
                    (v.id, v.image_tag, v.image_digest)
                    for v in image_store.gc_candidates(session, self.keep)
                    if v.image_tag
                ]
            for version_id, tag, digest in candidates:
                if not self._remove(tag):
                    continue
                if digest is not None and not self._unpublish(tag, digest):
                    continue
                with self.db.session() as session:
                    image_store.mark_image_removed(session, version_id)
                removed.append(tag)
        if removed:
            log.info("image GC removed %d image(s): %s", len(removed), ", ".join(removed))
        return removed

    def _unpublish(self, tag: str, digest: str) -> bool:
        """Remove the registry's copy: the local registry tag, then the manifest in the
        registry. False (tried again next time) when the registry refused."""
        repository = digest.partition("@")[0]
        if not self._remove(f"{repository}:{tag.rpartition(':')[2]}"):
            return False
        if self.registry is None:
            log.warning("image GC: %s was pushed but EXECUTOR_REGISTRY is unset: kept", digest)
            return False
        try:
            self.registry.delete(digest)
        except ExecutorError as exc:
            log.warning("image GC: %s", exc.message)
            return False
        return True

    def _remove(self, tag: str) -> bool:
        if self.engine.images.remove(tag):
            return True
        # Gone already (removed by hand) counts as removed; in use does not.
        return not self.engine.images.exists(tag)
