"""Prometheus metrics (needs the API key like every other non-probe route)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from executor.api.deps import Authorized, ServiceDep

router = APIRouter(tags=["metrics"], dependencies=[Authorized])


@router.get("/metrics", response_class=Response)
def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
