"""The executor service: the store, the engine, the builder and the dispatcher, wired once."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
from pathlib import Path

from executor.build.builder import Builder
from executor.engine import Engine
from executor.errors import ExecutorError
from executor.gateway.live import LiveTokens
from executor.gateway.server import Gateway
from executor.intake.checker import CheckerLimits, UploadChecker
from executor.metrics import Metrics, QueueFigures
from executor.notify import Notifier
from executor.registry import Registry
from executor.run.dispatcher import Dispatcher
from executor.run.node import node_id_for
from executor.run.prepull import Prepuller
from executor.sandbox.import_check import check_import
from executor.schemas.events import EventIn
from executor.service.catalog import Catalog
from executor.service.events import EventIntake, Ingested
from executor.service.management import Management
from executor.service.uploads import Uploads
from executor.service.webhooks import Webhooks
from executor.settings import Settings, TenancySettings
from executor.store import nodes as node_store
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.listen import QUEUE_CHANNEL, VERSION_CHANNEL, Handler, StoreListener
from executor.store.logs import LOG_CHANNEL
from executor.store.tenants import KEY_CHANNEL
from executor.tenancy.access import Authenticator, Caller
from executor.tenancy.ratelimit import KeyLimiter, Limiter, StoreLimiter
from executor.tenancy.usage import KeyUsage
from executor.upkeep.image_gc import ImageCollector
from executor.upkeep.retention import Retention

__all__ = ["ExecutorService", "ensure_operator_key"]

log = logging.getLogger(__name__)

OPERATOR_KEY_BYTES = 32


def ensure_operator_key(settings: Settings) -> tuple[str, bool]:
    """The operator key: from settings, else from the key file, else generated and saved.

    Returns the key and whether it was generated just now (so it is shown once).
    """
    if settings.operator_key is not None:
        return settings.operator_key.get_secret_value(), False
    path: Path = settings.operator_key_file
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "pe_op_" + secrets.token_urlsafe(OPERATOR_KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True


def key_limiter(db: Database, tenancy: TenancySettings) -> Limiter:
    """Several API processes may share a PostgreSQL store: a key's buckets are kept there."""
    if db.is_sqlite:
        return KeyLimiter(tenancy.key_requests_per_minute, tenancy.key_upload_bytes_per_hour)
    return StoreLimiter(db, tenancy.key_requests_per_minute, tenancy.key_upload_bytes_per_hour)


def queue_figures(db: Database) -> QueueFigures:
    """The queue's figures the metrics report, read when scraped."""
    with db.session() as session:
        return QueueFigures(
            query_store.count_by_status(session),
            query_store.oldest_queued_at(session),
            node_store.count_by_state(session),
        )


class ExecutorService:
    """Everything the API needs; ``start`` and ``stop`` run in the app's lifespan."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.operator_key, self.operator_key_generated = ensure_operator_key(settings)
        # A transaction idle past a lease is a paused process's: see Database.
        self.db = Database(
            settings.resolved_database_url, settings.database_pool_size, settings.runs.lease_s
        )
        self.intake = EventIntake(self.db, self._event_stored)
        self.engine = engine or Engine()
        self.metrics = Metrics(
            functools.partial(queue_figures, self.db), settings.tenancy.metrics_max_plugins
        )
        self.upload_checker = UploadChecker(CheckerLimits.from_settings(settings.uploads))
        self.builder = Builder(
            self.db,
            self.engine,
            settings,
            self.metrics,
            import_check=functools.partial(check_import, self.engine, settings),
            source_scan=self.upload_checker.scan_for_build,
        )
        registry = Registry.configured(settings.images)
        self.image_gc = ImageCollector(
            self.db, self.engine, settings.images.keep_versions, registry
        )
        self.builder.on_active.append(self.image_gc.collect)
        self.limiter = key_limiter(self.db, settings.tenancy)
        self.uploads = Uploads(self.db, self.builder, self.limiter, self.upload_checker)
        self.catalog = Catalog(self.db)
        self.webhooks = Webhooks(self.db, settings)
        # The tokens of this process's runs, checked by its gateway in memory.
        self.live_tokens = LiveTokens()
        self.gateway = Gateway(
            self.db,
            settings,
            lambda status: self.metrics.gateway_calls.labels(str(status)).inc(),
            self.live_tokens,
        )
        self.log_notifier = Notifier()
        # Runs on other processes (workers) write to a shared PostgreSQL: hear their commits,
        # and the keys other API processes revoke.
        self.store_listener = (
            None
            if self.db.is_sqlite
            else StoreListener(
                self.db.url,
                {LOG_CHANNEL: lambda _: self.log_notifier.notify(), KEY_CHANNEL: self._key_revoked},
            )
        )
        self.dispatcher = Dispatcher(
            self.db,
            self.engine,
            settings,
            self.metrics,
            self.log_notifier.notify,
            self.live_tokens,
        )
        self.builder.on_active.append(self.dispatcher.pool.wake)
        # Pushed images are pulled ahead of their first event by processes that run them.
        self.prepuller = Prepuller(self.db, self.engine, registry) if registry else None
        heard: dict[str, Handler] = {QUEUE_CHANNEL: self.dispatcher.announced}
        if self.prepuller is not None:
            self.builder.on_active.append(self.prepuller.wake)
            self.builder.on_pushed.append(self.prepuller.wake)
            heard[VERSION_CHANNEL] = self.prepuller.wake
        # Events queued by another process (the API, for a worker): claimed when queued;
        # and versions pushed by another process's build: pulled when pushed.
        self.queue_listener = (
            None
            if self.db.is_sqlite or not settings.runs.dispatch
            else StoreListener(self.db.url, heard)
        )
        self.retention = Retention(self.db, settings.retention)
        self.key_usage = KeyUsage(self.db)
        self.authenticator = Authenticator(
            self.db,
            self.operator_key,
            settings.tenancy.key_cache_s,
            usage=self.key_usage,
            live=self.store_listener.listening.is_set if self.store_listener else lambda: True,
        )
        self.management = Management(self.db, self.authenticator, self.dispatcher.wake)

    async def post_event(self, caller: Caller, event_in: EventIn) -> Ingested:
        """Store the event and its invocations (``executor.service.events.EventIntake``):
        answered once committed."""
        return await asyncio.wrap_future(self.intake.submit(caller, event_in))

    def _event_stored(self, ingested: Ingested) -> None:
        self.metrics.events_received.inc()
        if ingested.invocation_ids:  # nothing to claim otherwise: spare the store a claim
            self.dispatcher.wake()

    def _key_revoked(self, key_id: str | None) -> None:
        """A key was revoked or deleted through any process (None: maybe some while the
        listener was away): this process stops trusting it."""
        if key_id is None:
            self.authenticator.forget_all()
            return
        self.authenticator.forget(key_id)
        self.metrics.key_revocations_heard.inc()

    def start(self, *, api: bool = True) -> None:
        """Start the parts of the role: with ``api`` (``serve``) builds, image GC and
        retention too; without (``worker``) the dispatcher and its gateway only."""
        self.db.migrate()
        # Known only now: the store's id once migrated, the node's from the engine's own.
        self.engine.identify(self.db.store_id(), node_id_for(self.settings, self.engine))
        self.gateway.start()
        if api:
            self.builder.resume_unfinished()
        if self.settings.runs.dispatch:
            self.dispatcher.start()
            if self.queue_listener is not None:
                self.queue_listener.start()
            if self.prepuller is not None:
                self.prepuller.start()
        if not api:
            return
        if self.store_listener is not None:
            self.store_listener.start()
        try:
            self.image_gc.collect()
        except ExecutorError as exc:  # GC is housekeeping: the service runs without it
            log.warning("image GC at start failed: %s", exc.message)
        self.retention.start()
        self.key_usage.start()

    def stop(self) -> None:
        self.intake.stop()
        self.key_usage.stop()
        if self.store_listener is not None:
            self.store_listener.stop()
        self.retention.stop()
        if self.prepuller is not None:
            self.prepuller.stop()
        if self.queue_listener is not None:
            self.queue_listener.stop()
        self.dispatcher.stop()
        self.gateway.stop()
        self.upload_checker.close()
        self.builder.close()
        self.db.dispose()
        self.engine.close()
