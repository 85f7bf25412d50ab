"""Prometheus metrics: executor-wide figures, so for the operator key only."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from executor.api.deps import OperatorOnly, ServiceDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(_caller: OperatorOnly, service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
