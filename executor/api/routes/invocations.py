"""Invocation records."""

from __future__ import annotations

from fastapi import APIRouter, Query

from executor.api.deps import Authorized, SessionDep
from executor.api.presenters import invocation_public
from executor.schemas import InvocationPublic
from executor.store import invocations as invocation_store

router = APIRouter(prefix="/v1/invocations", tags=["invocations"], dependencies=[Authorized])


@router.get("", response_model=list[InvocationPublic])
def list_invocations(
    session: SessionDep,
    plugin_name: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    skip: int = Query(0, ge=0),
) -> list[InvocationPublic]:
    """Newest first."""
    rows = invocation_store.list_invocations(
        session,
        plugin_name=plugin_name,
        project_id=project_id,
        status=status,
        limit=limit,
        skip=skip,
    )
    return [invocation_public(r) for r in rows]


@router.get("/{invocation_id}", response_model=InvocationPublic)
def get_invocation(invocation_id: str, session: SessionDep) -> InvocationPublic:
    return invocation_public(invocation_store.get_invocation(session, invocation_id))
