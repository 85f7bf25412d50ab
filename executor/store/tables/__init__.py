"""Table models, by domain; every one is gathered here (alembic's metadata, and the one
import path of the store's modules). Wire schemas live in ``executor.schemas``; these are
rows."""

from __future__ import annotations

from executor.store.tables.base import DEFAULT_TENANT, Base, UTCDateTime, new_id, utcnow
from executor.store.tables.plugins import (
    Activation,
    Plugin,
    PluginVersion,
    VersionPull,
    Webhook,
)
from executor.store.tables.runs import (
    DispatchLock,
    Event,
    GatewayCall,
    Invocation,
    InvocationToken,
    LogRecord,
    Node,
)
from executor.store.tables.tenancy import (
    ApiKey,
    AuditEntry,
    KeyBucket,
    Project,
    Tenant,
    UploadTicket,
)

__all__ = [
    "DEFAULT_TENANT",
    "Activation",
    "ApiKey",
    "AuditEntry",
    "Base",
    "DispatchLock",
    "Event",
    "GatewayCall",
    "Invocation",
    "InvocationToken",
    "KeyBucket",
    "LogRecord",
    "Node",
    "Plugin",
    "PluginVersion",
    "Project",
    "Tenant",
    "UTCDateTime",
    "UploadTicket",
    "VersionPull",
    "Webhook",
    "new_id",
    "utcnow",
]
