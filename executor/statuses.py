"""Statuses and scopes, defined once: what an invocation, a build and an API key can be.

Each is a ``StrEnum``, so a member equals its string, pydantic writes its value on the
wire, and the store keeps it in a plain string column.
"""

from __future__ import annotations

import enum

__all__ = [
    "PLUGIN_FAILURES",
    "TERMINAL_STATUSES",
    "AttemptKind",
    "BuildStatus",
    "InvocationStatus",
    "NodeState",
    "PluginKind",
    "RunErrorType",
    "RuntimeFlavor",
    "Scope",
]


class InvocationStatus(enum.StrEnum):
    """Where an invocation is: waiting, running, or one of the terminal statuses."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OOM_KILLED = "oom_killed"
    CRASHED = "crashed"
    CANCELED = "canceled"
    DEAD = "dead"


# An invocation in one of these has ended: it is never run again (a replay is a new one).
TERMINAL_STATUSES: frozenset[InvocationStatus] = frozenset(InvocationStatus) - {
    InvocationStatus.QUEUED,
    InvocationStatus.RUNNING,
}

# Terminal statuses that are the plugin's own doing: retried only if the activation asks.
PLUGIN_FAILURES: frozenset[InvocationStatus] = frozenset(
    {InvocationStatus.FAILED, InvocationStatus.TIMED_OUT, InvocationStatus.OOM_KILLED}
)


class AttemptKind(enum.StrEnum):
    """Why an attempt of an invocation did not end it (kept with its reason): retries of
    plugin failures are counted, infrastructure failures are retried for a time budget."""

    PLUGIN = "plugin"  # the plugin's own failure (PLUGIN_FAILURES)
    INFRASTRUCTURE = "infrastructure"  # registry, engine, store, container stopped outside
    HANDED_BACK = "handed_back"  # the executor shut down while it ran


class RunErrorType(enum.StrEnum):
    """A failed run's ``error_type`` when the executor classified the failure itself (the
    plugin raised nothing it reported): named like Lambda's ``errorType`` values, so they
    read apart from a Python exception's name (``ValueError``, ``requests.HTTPError``)."""

    TIMED_OUT = "Sandbox.Timeout"  # past its wall time: killed
    OUT_OF_MEMORY = "Sandbox.OutOfMemory"  # the engine recorded an OOM kill
    LOG_LIMIT = "Sandbox.LogLimitExceeded"  # more output than its cap: stopped
    EXIT_ERROR = "Runtime.ExitError"  # exited non-zero with no exception reported
    ENVELOPE_TOO_LARGE = "Executor.EnvelopeTooLarge"  # the event never reached it
    INFRASTRUCTURE = "Executor.InfrastructureFailure"  # engine/registry/store retries used up
    LEASE_EXPIRED = "Executor.LeaseExpired"  # the executors running it kept stopping
    CRASHED = "Executor.Crashed"  # version, event or image gone; the executor's own error
    CANCELED = "Executor.Canceled"  # the plugin was deleted before the run started
    WEBHOOK = "Webhook.DeliveryFailed"  # the receiver failed or could not be reached


class BuildStatus(enum.StrEnum):
    """A plugin version's build: in progress, or its image ready, or failed."""

    DEPLOYING = "DEPLOYING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"


class PluginKind(enum.StrEnum):
    """What a plugin is: code built into an image and run in a container, or a webhook (a
    URL each matching event is POSTed to)."""

    CODE = "code"
    WEBHOOK = "webhook"


class RuntimeFlavor(enum.StrEnum):
    """The base image a plugin version builds FROM (runtime_image/flavors/<name>.txt)."""

    MINIMAL = "minimal"  # the runtime only
    KILI = "kili"  # + the Kili SDK (the default)
    DATASCIENCE = "datascience"  # Kili's on-premise set + the Kili SDK


class Scope(enum.StrEnum):
    """What a tenant key may do. ``admin`` manages the tenant's keys and reads its audit."""

    PLUGINS_WRITE = "plugins:write"
    PLUGINS_READ = "plugins:read"
    LOGS_READ = "logs:read"
    EVENTS_WRITE = "events:write"
    ADMIN = "admin"


class NodeState(enum.StrEnum):
    """A dispatching process (a node): taking runs, finishing its runs only, or silent
    past the lease TTL (its runs are re-queued elsewhere)."""

    READY = "ready"
    DRAINING = "draining"
    LOST = "lost"
