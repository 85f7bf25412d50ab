"""The settings of running plugins: slots, leases and retries, warm pools, nodes, webhooks."""

from __future__ import annotations

import os
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from executor.identifiers import NodeId
from executor.settings.base import Group, group_config

__all__ = ["NodeSettings", "RunSettings", "WarmPoolSettings", "WebhookSettings"]


def _twice_the_cores() -> int:
    return 2 * (os.cpu_count() or 1)


class RunSettings(Group):
    """How many runs at once, how the queue is polled and leased, how runs are retried."""

    name: ClassVar[str] = "runs"

    max_concurrent_runs: int = Field(
        default_factory=_twice_the_cores, ge=1, description="Plugin containers running at once."
    )
    max_runs_per_plugin: int = Field(
        default_factory=_twice_the_cores,
        ge=1,
        description="Containers of one plugin running at once, on all nodes together.",
    )
    max_runs_per_project: int = Field(
        default_factory=_twice_the_cores,
        ge=1,
        description="Containers for one project running at once, on all nodes together.",
    )
    dispatch: bool = Field(
        True,
        description="Run queued invocations. false: this process serves the API and builds "
        "only; events stay queued for a process that dispatches (same store).",
    )
    dispatch_poll_s: float = Field(1.0, gt=0, description="Queue poll interval (fallback).")
    lease_s: float = Field(30.0, gt=0, description="Lease on a running invocation; renewed.")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM, wait this long for runs before handing them back."
    )
    retry_max_attempts: int = Field(
        5,
        ge=1,
        description="Attempts of a run whose executor stopped (its lease expired), and of a "
        "webhook delivery, before 'dead'.",
    )
    infra_retry_budget_s: float = Field(
        600.0,
        gt=0,
        description="How long a run keeps being retried through infrastructure failures "
        "(registry, Docker Engine, store unreachable; container stopped from outside), from "
        "its first one, before 'dead'.",
    )
    retry_base_s: float = Field(1.0, gt=0, description="First retry delay; doubles each time.")
    retry_max_s: float = Field(60.0, gt=0, description="Longest retry delay.")


class WarmPoolSettings(Group):
    """Started containers kept waiting for the next event of a plugin version."""

    model_config = group_config("EXECUTOR_WARM_POOL_")
    name: ClassVar[str] = "warm_pool"

    size: int = Field(
        1, ge=0, description="Started containers kept waiting per active plugin version; 0: none."
    )
    memory_budget_mib: int = Field(
        2048, ge=0, description="Memory limit summed over all warm containers; caps the pools."
    )
    placement_grace_s: float = Field(
        2.0,
        ge=0,
        validation_alias="EXECUTOR_PLACEMENT_GRACE_S",
        description="A new run of a version warm on another live node is left to that node "
        "this long by a node without a warm container of it; 0: no warm-aware placement.",
    )
    idle_s: float = Field(
        600.0, gt=0, description="A warm pool unused this long is emptied until its next event."
    )


class NodeSettings(Group):
    """This process as one node of a cluster (docs/scaling.md)."""

    model_config = group_config("EXECUTOR_NODE_")
    name: ClassVar[str] = "nodes"

    id: NodeId | None = Field(
        None,
        description="This process's node id, on every container it creates; default: "
        "hostname-<engine id>. Each dispatching process on one engine needs its own.",
    )
    runtimes: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="OCI runtimes this node offers, comma-separated (e.g. runc); default: "
        "those the engine has registered.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description='Labels an activation\'s node selector matches, JSON: {"zone": "a"}.',
    )
    clock_skew_warn_s: float = Field(
        5.0,
        gt=0,
        validation_alias="EXECUTOR_CLOCK_SKEW_WARN_S",
        description="A node whose clock is off from the database's by more than this logs a "
        "warning (shown in `plugin-executor nodes`); leases and heartbeats use the "
        "database's clock either way.",
    )

    @field_validator("runtimes", mode="before")
    @classmethod
    def _split_runtimes(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class WebhookSettings(Group):
    """Webhook deliveries: where they may go, their time limit, retries and threads
    (docs/webhooks.md)."""

    model_config = group_config("EXECUTOR_WEBHOOK_")
    name: ClassVar[str] = "webhooks"

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (or host:port) webhooks may reach although they resolve to a "
        "loopback, link-local, private, unspecified or multicast address, JSON: "
        '["hooks.lan:8443"].',
    )
    timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time limit of one delivery: connecting, sending and the answer's head.",
    )
    max_attempts: int = Field(
        5, ge=1, description="Deliveries of one event on 5xx, timeouts and connection errors."
    )
    pool_size: int = Field(
        16,
        ge=1,
        description="Webhook deliveries in flight at once on one executor, on threads of "
        "their own: a slow receiver holds one of these, never a plugin run slot.",
    )
    tenant_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of the webhook pool one tenant's deliveries may hold at once "
        "(at least one delivery), so one tenant's slow receivers leave the rest to others.",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_only(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parts = urlsplit(f"http://{entry}")
            try:
                parts.port  # noqa: B018 -- reading it validates it
            except ValueError as exc:
                raise ValueError(f"webhook allowed host {entry!r}: {exc}") from exc
            if not parts.hostname or parts.path or parts.query or parts.username:
                raise ValueError(
                    f"webhook allowed host {entry!r} is not a host or host:port "
                    "(e.g. hooks.lan, hooks.lan:8443, [fd00::1]:443)"
                )
        return entries
