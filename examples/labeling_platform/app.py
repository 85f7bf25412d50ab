"""Builds the reference platform's FastAPI app (database, event delivery, routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from examples.labeling_platform.db import Database
from examples.labeling_platform.delivery import Deliverer
from examples.labeling_platform.errors import install_error_handler
from examples.labeling_platform.idempotency import IdempotencyKeys
from examples.labeling_platform.kili_graphql import router as kili_graphql_router
from examples.labeling_platform.routes import router
from examples.labeling_platform.settings import PlatformSettings

__all__ = ["create_app"]


def create_app(settings: PlatformSettings) -> FastAPI:
    """The app; event delivery to the executor runs while the app is being served."""
    db = Database(settings.database_path)
    deliverer = Deliverer(settings, db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        deliverer.start()
        try:
            yield
        finally:
            deliverer.stop()
            db.close()

    app = FastAPI(title="Reference labeling platform", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.deliverer = deliverer
    install_error_handler(app)
    app.include_router(router)
    app.include_router(kili_graphql_router)  # the Kili SDK's operations (self.kili)
    # Outermost: a call made again (a re-run attempt of a plugin) is answered before any
    # route acts.
    app.add_middleware(
        IdempotencyKeys,
        max_keys=settings.idempotency_max_keys,
        ttl_s=settings.idempotency_ttl_s,
    )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
