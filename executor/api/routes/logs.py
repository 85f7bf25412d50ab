"""Plugin logs, queried like Kili's ``get_plugin_logs``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from executor.api.deps import Authorized, SessionDep
from executor.api.presenters import log_public
from executor.schemas import LogRecordPublic
from executor.store import logs as log_store

router = APIRouter(prefix="/v1/logs", tags=["logs"], dependencies=[Authorized])


@router.get("", response_model=list[LogRecordPublic])
def get_logs(
    session: SessionDep,
    project_id: str | None = None,
    plugin_name: str | None = None,
    run_id: str | None = None,
    start_date: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    skip: int = Query(0, ge=0),
) -> list[LogRecordPublic]:
    """Log records, oldest first."""
    rows = log_store.query_records(
        session,
        project_id=project_id,
        plugin_name=plugin_name,
        run_id=run_id,
        start_date=start_date,
        limit=limit,
        skip=skip,
    )
    return [log_public(r) for r in rows]
