"""Liveness and readiness (no API key: probes carry none)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from executor.api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(service: ServiceDep) -> JSONResponse:
    checks = {"store": service.db.ping(), "docker": service.engine.ping()}
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)
