"""The heap of a long-running process (``serve``, ``worker``), settled once it has started."""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap() -> None:
    """Keep what start-up built (modules, routes, table metadata: a few hundred thousand
    objects that live as long as the process) out of the collector's way.

    A full collection walks every tracked object: measured under load, one took 70 ms, a
    stall that every request in flight waited out, and the slowest requests of an ingest
    run were those. Frozen objects are skipped by every collection (``gc.freeze``); what
    they hold is never garbage anyway."""
    gc.collect()
    gc.freeze()
