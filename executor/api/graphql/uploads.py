"""Upload URLs: ``createPlugin`` / ``generateUpdateUrl`` hand one out, the SDK PUTs its zip
there, and ``createPluginRunner`` / ``updatePluginRunner`` turn it into a version.

The URL carries a random one-time ticket (like a signed bucket URL) bound to the caller's
tenant and the plugin name. The store keeps the ticket's SHA-256 (never the ticket) and the
archive PUT to it for ``TICKET_TTL_S``, so the call that issues it, the PUT and the runner
call may each reach another API process behind one address (``executor.store.uploads``).
A ticket takes one archive, which one runner call uses up.
"""

from __future__ import annotations

import secrets

from executor.errors import Conflict, NotFound
from executor.store import uploads as upload_store
from executor.store.db import Database
from executor.tenancy.access import Caller
from executor.tokens import hash_token

__all__ = ["MAX_TICKETS_PER_TENANT", "TICKET_TTL_S", "UploadDesk"]

TICKET_TTL_S = 15 * 60.0
TICKET_BYTES = 24
# Open tickets per tenant: each may hold an archive (up to the upload cap) in the store, so
# a tenant's oldest ticket is dropped past this many.
MAX_TICKETS_PER_TENANT = 4


class UploadDesk:
    """The upload tickets handed out and the archives PUT to them, in the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def issue(self, caller: Caller, name: str, *, update: bool) -> str:
        """A new ticket for ``caller`` to upload plugin ``name`` (a new one, or an update)."""
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        with self._db.session() as session:
            upload_store.add_ticket(
                session,
                hash_token(ticket),
                caller.tenant_id,
                name,
                update=update,
                ttl_s=TICKET_TTL_S,
                keep=MAX_TICKETS_PER_TENANT,
            )
        return ticket

    def receive(self, caller: Caller, ticket: str, data: bytes) -> None:
        """Keep the archive ``caller`` PUT to ``ticket``'s URL (NotFound for an unknown,
        expired or used ticket, or another tenant's)."""
        with self._db.session() as session:
            filled = upload_store.fill_ticket(session, hash_token(ticket), caller.tenant_id, data)
        if not filled:
            raise NotFound(
                "this upload URL is unknown or expired, or was used already: ask for a new one "
                "(kili.upload_plugin / kili.update_plugin do)"
            )

    def take(self, caller: Caller, name: str, *, update: bool) -> bytes:
        """The archive uploaded for ``name`` by ``caller``'s tenant (the ticket is used up)."""
        with self._db.session() as session:
            archive = upload_store.take_archive(session, caller.tenant_id, name, update=update)
        if archive:
            return archive
        first = "generateUpdateUrl" if update else "createPlugin"
        raise Conflict(
            f"no archive was uploaded for plugin {name!r}: call {first}, PUT the zip to the URL "
            "it returns, then call this again"
        )
