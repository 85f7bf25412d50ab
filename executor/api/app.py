"""Builds the FastAPI app around an ``ExecutorService``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from executor.api.errors import install_error_handlers
from executor.api.graphql import graphql_router
from executor.api.graphql.route import UPLOAD_SUFFIX
from executor.api.limits import BodyLimitMiddleware
from executor.api.public_url import PublicUrlMiddleware
from executor.api.request_ids import RequestIdMiddleware
from executor.api.routes import (
    audit,
    events,
    health,
    invocations,
    logs,
    metrics,
    nodes,
    plugins,
    projects,
    runtimes,
    samples,
    stats,
    tenants,
    webhooks,
)
from executor.gateway.server import JsonErrorH11
from executor.service.wiring import ExecutorService

__all__ = ["HTTP_PROTOCOL", "create_app"]

# What uvicorn serves the API with: a request h11 cannot parse gets JSON, like every answer.
HTTP_PROTOCOL = JsonErrorH11

# An upload (10 MiB archive) plus its multipart framing; every other body is far smaller.
UPLOAD_CAP_BYTES = 11 * 1024 * 1024

# The web console: static files, no build step. They hold no data and no key, so they are
# served without one; every API call they make carries the key the user signs in with.
UI_DIR = Path(__file__).resolve().parent.parent / "ui"


def create_app(service: ExecutorService) -> FastAPI:
    """The API; the service starts with the app and stops with it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="Plugin Executor", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        caps={
            "/v1/events": service.settings.api.max_event_bytes,
            "/v1/plugins": UPLOAD_CAP_BYTES,
            service.settings.api.graphql_path + UPLOAD_SUFFIX: UPLOAD_CAP_BYTES,
        },
        default_cap=service.settings.api.max_request_bytes,
    )
    app.add_middleware(PublicUrlMiddleware, public_url=service.settings.resolved_public_url)
    # Added last, so outermost: every answer, a 413 included, carries the request id.
    app.add_middleware(RequestIdMiddleware)
    for module in (
        health,
        plugins,
        runtimes,
        webhooks,
        projects,
        events,
        invocations,
        logs,
        metrics,
        tenants,
        audit,
        stats,
        nodes,
        samples,
    ):
        app.include_router(module.router)
    app.include_router(graphql_router(service.settings.api.graphql_path))
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
    # A person who opens the server's address lands on the console (a plain route, not an
    # API one: no key, no schema entry).
    app.add_route("/", _to_console, methods=["GET", "HEAD"], include_in_schema=False)
    return app


async def _to_console(_request: Request) -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)
