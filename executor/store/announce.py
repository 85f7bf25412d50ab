"""What a queue announcement (``NOTIFY`` on ``QUEUE_CHANNEL``, from the ingest that queues
runs) says about where its runs may go, and whether a node should look.

Every worker listens on the channel. Without a payload each one claimed at every
announcement, also for runs only another node may take (their activation names a runtime
or labels it lacks): on a worker's warm start of a few milliseconds, the other workers'
futile claims competed for the store and the cores with the one that ran it. The payload
lists the placements of the announced runs (each activation's runtime and node selector,
distinct); a node looks at the queue only if it may run one of them
(``NodeClaim.can_run``, the same test as the claim's own).

A node that does not look misses nothing it could take: an activation placed elsewhere
after the announcement is found at its next poll (``dispatch_poll_s``), as a run is whose
announcement was lost. An empty payload, or one this version cannot read, means "look".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from executor.store.claim_selection import NodeClaim

__all__ = ["MAX_PAYLOAD_CHARS", "Placement", "announcement", "encoded", "worth_a_look"]

# PostgreSQL refuses a payload of 8,000 bytes or more; past this, the announcement is
# empty ("look"), and a reader never parses more than this.
MAX_PAYLOAD_CHARS = 4000

# A run's placement: its activation's runtime (None: the operator's) and node selector.
Placement = tuple[str | None, Mapping[str, Any] | None]


def encoded(placement: Placement) -> str:
    """A placement as the announcement writes it: the same placement, the same text (an
    empty selector is none; the labels in order). Encoded once per activation read, not per
    run announced."""
    runtime, selector = placement
    return json.dumps([runtime, selector or None], separators=(",", ":"), sort_keys=True)


def announcement(placements: Iterable[str]) -> str:
    """The payload announcing runs with these ``encoded`` placements (distinct, in a stable
    order); empty when they would not fit."""
    payload = "[" + ",".join(sorted(set(placements))) + "]"
    return payload if len(payload) <= MAX_PAYLOAD_CHARS else ""


def worth_a_look(payload: str | None, node: NodeClaim | None) -> bool:
    """Whether ``node`` should claim on hearing ``payload``: unless the payload is readable
    and no placement in it is one the node may run. ``None`` (reconnected: anything may
    have been announced meanwhile) and a node that has not joined yet always look."""
    if not payload or node is None:
        return True
    placements = _read(payload)
    if placements is None:
        return True
    return any(node.can_run(runtime, selector) for runtime, selector in placements)


def _read(payload: str) -> list[Placement] | None:
    """The placements of a payload ``announcement`` wrote; None for anything else."""
    if len(payload) > MAX_PAYLOAD_CHARS:
        return None
    try:
        items = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return None
    if not isinstance(items, list):
        return None
    placements: list[Placement] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        runtime, selector = item
        if not (runtime is None or isinstance(runtime, str)):
            return None
        if not (selector is None or isinstance(selector, dict)):
            return None
        placements.append((runtime, selector))
    return placements
