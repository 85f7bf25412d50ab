"""Management actions on tenants, keys, runs and nodes, each recorded in the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from executor.errors import Conflict
from executor.service.audit import record
from executor.store import nodes as node_store
from executor.store import plugins as plugin_store
from executor.store import queries as query_store
from executor.store import queue as queue_store
from executor.store import tenants as tenant_store
from executor.store import versions as version_store
from executor.store.db import Database
from executor.store.tables import Invocation, Node
from executor.tenancy.access import Authenticator, Caller

__all__ = ["Management"]


class Management:
    """What an operator or a tenant's admin does besides the plugin catalog: the audit
    trail, keys and tenants (which the authenticator stops trusting at once), replays and
    node drains."""

    def __init__(
        self, db: Database, authenticator: Authenticator, wake_dispatcher: Callable[[], None]
    ) -> None:
        self.db = db
        self.authenticator = authenticator
        self.wake_dispatcher = wake_dispatcher

    def audit(
        self,
        caller: Caller,
        action: str,
        target: str,
        *,
        tenant_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a management action ``caller`` took (on ``tenant_id``, default the
        caller's) in the audit trail."""
        with self.db.session() as session:
            record(session, caller, action, target, tenant_id=tenant_id, detail=detail)

    def revoke_key(self, caller: Caller, tenant_id: str, key_id: str) -> None:
        """Revoke one of the tenant's keys: from this request on it answers 401."""
        with self.db.session() as session:
            tenant_store.revoke_key(session, tenant_id, key_id)
        self.authenticator.forget(key_id)
        self.audit(caller, "key.revoke", key_id, tenant_id=tenant_id)

    def delete_tenant(self, caller: Caller, tenant_id: str) -> None:
        """Delete a tenant without plugins, its keys and projects (Conflict while it has
        plugins): its keys answer 401 from this request on."""
        with self.db.session() as session:
            key_ids = tenant_store.delete_tenant(session, tenant_id)
        self.authenticator.forget_tenant(tenant_id, key_ids)
        self.audit(caller, "tenant.delete", tenant_id, tenant_id=tenant_id)

    def replay(self, caller: Caller, invocation_id: str) -> Invocation:
        """A new queued invocation of a finished one's event, on the plugin's current ACTIVE
        version (the original's if none is ACTIVE now); Conflict if the plugin was deleted
        (a new plugin of the same name is another plugin)."""
        with self.db.session() as session:
            original = query_store.get_invocation(session, invocation_id, caller.tenant_id)
            plugin = plugin_store.find_plugin(session, original.plugin_id)
            if plugin is None:
                raise Conflict(
                    f"invocation {invocation_id} ran plugin {original.plugin_name!r}, which was "
                    "deleted: it cannot run again; post the event again to run the plugin that "
                    "has the name now"
                )
            current = version_store.current_version(plugin)
            version_id = current.id if current else original.version_id
            number = current.number if current else original.version_number
            copy = queue_store.replay(session, invocation_id, version_id, number)
            record(session, caller, "invocation.replay", invocation_id, detail={"replay": copy.id})
        self.wake_dispatcher()
        return copy

    def drain_node(self, caller: Caller, node_id: str) -> tuple[Node, int]:
        """Make a node claim nothing new (audited); the node and the runs it still holds."""
        with self.db.session() as session:
            node = node_store.drain(session, node_id)
            running = node_store.running_by_node(session).get(node_id, 0)
            record(session, caller, "node.drain", node_id)
        return node, running
