"""GraphQL upload tickets and the archives PUT to them (``executor.api.graphql.uploads``).

Kept by the ticket's SHA-256 (a leaked table gives no usable URL), with the database's
clock for expiry: any API process on the store accepts the PUT and the runner call.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from executor.store.clock import db_now
from executor.store.tables import UploadTicket

__all__ = ["add_ticket", "drop_expired", "fill_ticket", "take_archive"]


def drop_expired(session: Session) -> None:
    session.execute(delete(UploadTicket).where(UploadTicket.expires_at <= db_now()))


def add_ticket(
    session: Session,
    ticket_sha256: str,
    tenant_id: str,
    name: str,
    *,
    update: bool,
    ttl_s: float,
    keep: int,
) -> None:
    """Store a ticket valid for ``ttl_s``; the tenant's oldest are dropped so that it holds
    at most ``keep`` (each may hold an archive)."""
    drop_expired(session)
    held = select(UploadTicket.ticket_sha256).where(UploadTicket.tenant_id == tenant_id)
    newest_first = held.order_by(UploadTicket.created_at.desc(), UploadTicket.expires_at.desc())
    kept = list(session.scalars(newest_first.limit(keep - 1)))
    session.execute(
        delete(UploadTicket).where(
            UploadTicket.tenant_id == tenant_id, UploadTicket.ticket_sha256.not_in(kept)
        )
    )
    session.add(
        UploadTicket(
            ticket_sha256=ticket_sha256,
            tenant_id=tenant_id,
            plugin_name=name,
            is_update=update,
            created_at=db_now(),
            expires_at=db_now(ttl_s),
        )
    )
    session.flush()


def fill_ticket(session: Session, ticket_sha256: str, tenant_id: str, archive: bytes) -> bool:
    """Keep the archive PUT to a ticket: False for an unknown, expired or used ticket, or
    another tenant's (a ticket takes one archive)."""
    filled = session.execute(
        update(UploadTicket)
        .where(
            UploadTicket.ticket_sha256 == ticket_sha256,
            UploadTicket.tenant_id == tenant_id,
            UploadTicket.expires_at > db_now(),
            UploadTicket.archive.is_(None),
        )
        .values(archive=archive)
    )
    return bool(filled.rowcount)  # type: ignore[attr-defined]


def take_archive(session: Session, tenant_id: str, name: str, *, update: bool) -> bytes | None:
    """The oldest archive uploaded for ``name`` by the tenant, its ticket deleted (used up);
    None if there is none. Of two concurrent takes of one ticket, one gets it."""
    oldest = (
        select(UploadTicket.ticket_sha256)
        .where(
            UploadTicket.tenant_id == tenant_id,
            UploadTicket.plugin_name == name,
            UploadTicket.is_update == update,
            UploadTicket.archive.is_not(None),
            UploadTicket.expires_at > db_now(),
        )
        .order_by(UploadTicket.created_at)
        .limit(1)
        .scalar_subquery()
    )
    taken = session.execute(
        delete(UploadTicket)
        .where(UploadTicket.ticket_sha256 == oldest)
        .returning(UploadTicket.archive)
    ).scalar_one_or_none()
    return taken
