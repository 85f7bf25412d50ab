"""Upload URLs: ``createPlugin`` / ``generateUpdateUrl`` hand one out, the SDK PUTs its zip
there, and ``createPluginRunner`` / ``updatePluginRunner`` turn it into a version.

The URL carries a random one-time ticket (like a signed bucket URL) bound to the caller
and the plugin name. Tickets live in this process's memory for ``TICKET_TTL_S``: the SDK
PUTs and creates the runner within seconds, against the same server.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from executor.errors import Conflict, NotFound
from executor.tenancy.access import Caller

__all__ = ["MAX_TICKETS_PER_TENANT", "TICKET_TTL_S", "UploadDesk"]

TICKET_TTL_S = 15 * 60.0
TICKET_BYTES = 24
# Open tickets per tenant: each may hold an archive (up to the upload cap) in memory, so a
# tenant's oldest ticket is dropped past this many.
MAX_TICKETS_PER_TENANT = 4


@dataclass
class _Ticket:
    tenant_id: str
    name: str
    update: bool
    expires_at: float
    data: bytes | None = None


class UploadDesk:
    """The upload tickets handed out and the archives PUT to them, by token."""

    def __init__(self) -> None:
        self._tickets: dict[str, _Ticket] = {}
        self._lock = threading.Lock()

    def issue(self, caller: Caller, name: str, *, update: bool) -> str:
        """A new ticket for ``caller`` to upload plugin ``name`` (a new one, or an update)."""
        token = secrets.token_urlsafe(TICKET_BYTES)
        ticket = _Ticket(caller.tenant_id, name, update, time.monotonic() + TICKET_TTL_S)
        with self._lock:
            self._drop_expired()
            mine = [t for t, held in self._tickets.items() if held.tenant_id == caller.tenant_id]
            for oldest in mine[: max(0, len(mine) - MAX_TICKETS_PER_TENANT + 1)]:
                del self._tickets[oldest]
            self._tickets[token] = ticket
        return token

    def receive(self, caller: Caller, token: str, data: bytes) -> None:
        """Keep the archive ``caller`` PUT to ``token``'s URL (NotFound for an unknown or
        expired ticket, or another tenant's)."""
        with self._lock:
            self._drop_expired()
            ticket = self._tickets.get(token)
            if ticket is None or ticket.tenant_id != caller.tenant_id:
                raise NotFound(
                    "this upload URL is unknown or expired: ask for a new one "
                    "(kili.upload_plugin / kili.update_plugin do)"
                )
            ticket.data = data

    def take(self, caller: Caller, name: str, *, update: bool) -> bytes:
        """The archive uploaded for ``name`` by ``caller``'s tenant (the ticket is used up)."""
        with self._lock:
            self._drop_expired()
            wanted = (caller.tenant_id, name, update)
            for token, ticket in self._tickets.items():
                if (ticket.tenant_id, ticket.name, ticket.update) == wanted and ticket.data:
                    del self._tickets[token]
                    return ticket.data
        first = "generateUpdateUrl" if update else "createPlugin"
        raise Conflict(
            f"no archive was uploaded for plugin {name!r}: call {first}, PUT the zip to the URL "
            "it returns, then call this again"
        )

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for token in [t for t, ticket in self._tickets.items() if ticket.expires_at <= now]:
            del self._tickets[token]
