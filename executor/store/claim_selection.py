"""Which queued invocations one claim takes: a decision over the candidates and the running
counts alone (no session, no SQL). ``executor.store.claims`` reads both, and locks and
writes what this chooses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "NO_WEBHOOK_SLOTS",
    "PLUGIN_KEY",
    "PROJECT_KEY",
    "TENANT_KEY",
    "Candidate",
    "ClaimLimits",
    "NodeClaim",
    "Room",
    "Running",
    "WebhookSlots",
    "choose",
    "confirm",
    "fit_request",
    "limit_keys",
]

# The kinds of key a claim limit counts runs by; on PostgreSQL, also the first half of the
# key's advisory lock (``executor.store.claims``).
PLUGIN_KEY, PROJECT_KEY, TENANT_KEY = 1, 2, 3


@dataclass(frozen=True)
class ClaimLimits:
    """Concurrency limits checked at claim time, across every executor sharing the store."""

    per_plugin: int
    per_project: int
    per_tenant: int | None = None  # the default tenant quota; None: no cap


@dataclass(frozen=True)
class WebhookSlots:
    """The webhook deliveries a node can take on now, apart from its plugin run slots:
    ``free`` threads of its webhook pool, of which one tenant may hold ``per_tenant`` at
    once; ``held`` is what each tenant's deliveries hold on the node now."""

    free: int = 0
    per_tenant: int = 0
    held: Mapping[str, int] = field(default_factory=dict)

    def full_tenants(self) -> set[str]:
        return {tenant for tenant, count in self.held.items() if count >= self.per_tenant}


NO_WEBHOOK_SLOTS = WebhookSlots()


@dataclass(frozen=True)
class NodeClaim:
    """The claiming node: its id, the OCI runtimes its engine has, its labels, and the
    runtime a run gets when its activation names none (the operator's)."""

    node_id: str
    runtimes: frozenset[str]
    labels: dict[str, str]
    default_runtime: str

    def can_run(self, runtime: str | None, selector: Mapping[str, Any] | None) -> bool:
        """True when this node has the runtime and carries every label of the selector."""
        if (runtime or self.default_runtime) not in self.runtimes:
            return False
        return all(self.labels.get(key) == value for key, value in (selector or {}).items())


@dataclass
class Running:
    """Running invocations by plugin, by project, and by tenant (plugin runs only: a
    tenant's cap leaves its webhook deliveries out), for the keys asked about."""

    by_plugin: dict[str, int] = field(default_factory=dict)
    by_project: dict[str, int] = field(default_factory=dict)
    by_tenant: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A queued invocation as a claim weighs it: whose it is, when it was queued, whether
    it is a webhook delivery, and the runtime and node selector its activation asks for."""

    id: str
    plugin_id: str
    project_id: str
    tenant_id: str
    version_id: str
    queued_at: datetime
    webhook: bool = False
    runtime: str | None = None
    selector: Mapping[str, Any] | None = None


class Room:
    """What one claim may still take: the node's free slots of each kind and the running
    counts its limits are checked against, updated as it takes invocations. A tenant's cap
    of runs at once counts plugin runs; its webhook deliveries are held to its share of the
    webhook pool instead."""

    def __init__(
        self,
        runs: int,
        webhooks: WebhookSlots,
        limits: ClaimLimits,
        tenant_caps: Mapping[str, int | None],
        counts: Running,
    ) -> None:
        self.limits = limits
        self.runs = runs
        self.webhooks = webhooks.free
        self.webhook_share = webhooks.per_tenant
        self.webhooks_held = dict(webhooks.held)
        self.tenant_caps = dict(tenant_caps)
        self.counts = counts

    def cap(self, tenant: str) -> int | None:
        return self.tenant_caps.get(tenant, self.limits.per_tenant)

    def full_plugins(self) -> set[str]:
        return {p for p, n in self.counts.by_plugin.items() if n >= self.limits.per_plugin}

    def full_projects(self) -> set[str]:
        return {p for p, n in self.counts.by_project.items() if n >= self.limits.per_project}

    def full(self) -> bool:
        return self.runs <= 0 and self.webhooks <= 0

    def busy_tenants(self) -> set[str]:
        """Tenants at their cap of runs at once: none of their runs can be taken."""
        return {
            tenant
            for tenant, count in self.counts.by_tenant.items()
            if (cap := self.cap(tenant)) is not None and count >= cap
        }

    def admits(self, candidate: Candidate) -> bool:
        tenant = candidate.tenant_id
        if candidate.webhook:
            held = self.webhooks_held.get(tenant, 0)
            kind_free = self.webhooks > 0 and held < self.webhook_share
        else:
            cap = self.cap(tenant)
            kind_free = self.runs > 0 and (
                cap is None or self.counts.by_tenant.get(tenant, 0) < cap
            )
        return (
            kind_free
            and self.counts.by_plugin.get(candidate.plugin_id, 0) < self.limits.per_plugin
            and self.counts.by_project.get(candidate.project_id, 0) < self.limits.per_project
        )

    def take(self, candidate: Candidate) -> None:
        tenant = candidate.tenant_id
        if candidate.webhook:
            self.webhooks -= 1
            self.webhooks_held[tenant] = self.webhooks_held.get(tenant, 0) + 1
        else:
            self.runs -= 1
            self.counts.by_tenant[tenant] = self.counts.by_tenant.get(tenant, 0) + 1
        for counts, key in (
            (self.counts.by_plugin, candidate.plugin_id),
            (self.counts.by_project, candidate.project_id),
        ):
            counts[key] = counts.get(key, 0) + 1


def choose(
    room: Room,
    candidates: Iterable[Candidate],
    node: NodeClaim,
    warm_elsewhere: Iterable[str] = (),
    fresh_since: datetime | None = None,
) -> list[Candidate]:
    """The candidates (oldest first) ``node`` takes within ``room``, which is updated as it
    takes. One this node cannot run (runtime, labels) is left for another node and blocks
    nothing; so is one queued after ``fresh_since`` whose version another node holds warm
    (``warm_elsewhere``). A plugin whose oldest runnable candidate is blocked by a limit gets
    nothing newer (arrival order per plugin)."""
    warm = set(warm_elsewhere)
    eligible = [
        candidate
        for candidate in candidates
        if node.can_run(candidate.runtime, candidate.selector)
        and not (
            candidate.version_id in warm
            and fresh_since is not None
            and candidate.queued_at > fresh_since
        )
    ]
    return _in_order(room, eligible)


def confirm(locked: Room, picks: Sequence[Candidate]) -> list[Candidate]:
    """The picks that still fit ``locked`` (the room counted again under the limit keys'
    locks), in order; a plugin whose pick no longer fits gets none of its later picks."""
    return _in_order(locked, picks)


def _in_order(room: Room, candidates: Iterable[Candidate]) -> list[Candidate]:
    picks: list[Candidate] = []
    blocked: set[str] = set()
    for candidate in candidates:
        if room.full():
            break
        if candidate.plugin_id in blocked or not room.admits(candidate):
            blocked.add(candidate.plugin_id)
            continue
        room.take(candidate)
        picks.append(candidate)
    return picks


def limit_keys(room: Room, picks: Iterable[Candidate]) -> set[tuple[int, str]]:
    """The limit keys the picks count against: their plugins and projects, and the
    tenants of plugin runs whose tenant has a cap."""
    keys = set()
    for pick in picks:
        keys |= {(PLUGIN_KEY, pick.plugin_id), (PROJECT_KEY, pick.project_id)}
        if not pick.webhook and room.cap(pick.tenant_id) is not None:
            keys.add((TENANT_KEY, pick.tenant_id))
    return keys


def fit_request(room: Room, picks: Sequence[Candidate]) -> list[tuple[int, str, int, int]]:
    """(kind, key, runs the picks add, cap) of every limit key the picks count against, in
    key order: all the picks fit when each key's running count plus what they add stays
    within its cap (``Room.admits``, applied to all of them at once)."""
    keys = sorted(limit_keys(room, picks))
    request = []
    for kind, key in keys:
        if kind == PLUGIN_KEY:
            adds, cap = sum(p.plugin_id == key for p in picks), room.limits.per_plugin
        elif kind == PROJECT_KEY:
            adds, cap = sum(p.project_id == key for p in picks), room.limits.per_project
        else:
            adds = sum(p.tenant_id == key and not p.webhook for p in picks)
            cap = room.cap(key) or 0  # limit_keys names capped tenants only
        request.append((kind, key, adds, cap))
    return request
