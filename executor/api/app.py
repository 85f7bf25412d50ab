"""Builds the FastAPI app around an ``ExecutorService``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from executor.api.errors import install_error_handlers
from executor.api.routes import events, health, invocations, logs, plugins, projects
from executor.service import ExecutorService

__all__ = ["create_app"]


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
    for module in (health, plugins, projects, events, invocations, logs):
        app.include_router(module.router)
    return app
