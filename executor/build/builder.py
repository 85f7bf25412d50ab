"""Builds one image per plugin version, in the background.

The build context is made by ``executor.build.context``; the engine runs the build with the
operator's memory and CPU limits, on a network that is never the host's (none at all in
offline mode), and stops it at the wall-time limit. The output, capped, is kept as the
version's build log, with a timed step line for each step of the build
(``executor.build.steps``); the resolved dependency list (``pip freeze`` in the image) is stored
with the version. With a registry (``EXECUTOR_REGISTRY``) the image is pushed and its digest
recorded: a version is ACTIVE only once pushed, and a failed push is a FAILED build. A build
cut short by a shutdown stays DEPLOYING and is built again at the next start
(``resume_unfinished``); every other end is ACTIVE or FAILED.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from executor.build.context import BuildContext, context_archive
from executor.build.distribute import Distribution
from executor.build.image_checks import ImageChecks, ImportCheck, SourceScanner
from executor.build.steps import EnginePhases, StepEnd, timed_step
from executor.build.tls import CertificateWatch
from executor.buildlog import seconds, step_line
from executor.engine import BuildInterrupted, Engine
from executor.errors import BuildFailed, ExecutorError
from executor.metrics import Metrics
from executor.registry import Registry
from executor.settings import MIB, Settings
from executor.statuses import BuildStatus, RuntimeFlavor
from executor.store import versions as version_store
from executor.store.db import Database

__all__ = [
    "BuildContext",
    "BuildLog",
    "Builder",
    "build_plugin_image",
]

log = logging.getLogger(__name__)

LOG_FLUSH_INTERVAL_S = 0.5


def build_plugin_image(
    engine: Engine,
    settings: Settings,
    build: BuildContext,
    on_output: Callable[[str], None],
    stop: threading.Event,
    on_step: Callable[[str], None] | None = None,
) -> str:
    """Build ``build`` with the operator's limits (the one build recipe, also used by
    ``plugin-executor run``); returns the image id. The engine's output goes to
    ``on_output`` in whole lines, the step lines to ``on_step`` (default: ``on_output``).
    Raises ``BuildFailed`` (including ``BuildTimedOut``), ``SandboxError`` or
    ``BuildInterrupted`` when ``stop`` is set."""
    # Only pip needs a network, and only to reach the index: no requirements or a
    # wheelhouse means no network at all.
    offline = settings.build.wheelhouse is not None or not build.has_requirements
    phases = EnginePhases(on_output, on_step or on_output)
    watch = CertificateWatch(phases)
    try:
        image_id = _build_image(engine, settings, build, watch, stop, offline=offline)
    except BuildInterrupted:
        phases.finish(StepEnd.STOPPED)
        raise
    except BuildFailed as exc:
        phases.finish(StepEnd.FAILED)
        raise watch.explained(exc) from exc
    except BaseException:
        phases.finish(StepEnd.FAILED)
        raise
    phases.finish(StepEnd.DONE)
    return image_id


def _build_image(
    engine: Engine,
    settings: Settings,
    build: BuildContext,
    on_output: Callable[[str], None],
    stop: threading.Event,
    *,
    offline: bool,
) -> str:
    memory = settings.build.memory_mib * MIB
    return engine.images.build(
        context_archive(settings, build),
        tag=build.tag,
        on_output=on_output,
        timeout_s=settings.build.timeout_s,
        stop=stop,
        network_mode="none" if offline else settings.build.network,
        container_limits={
            "memory": memory,
            "memswap": memory,  # no swap on top
            "cpusetcpus": f"0-{min(settings.build.cpus, os.cpu_count() or 1) - 1}",
        },
    )


def _call_hooks(hooks: list[Callable[[str], object]], version_id: str) -> None:
    """Each hook with the version's id; one that fails is logged: the build's outcome
    stands (a pull ahead of time or a GC is housekeeping)."""
    for hook in hooks:
        try:
            hook(version_id)
        except Exception:
            log.exception("a build hook failed for version %s", version_id)


class BuildLog:
    """Collects build output, keeps at most ``cap`` bytes of it (then one truncation line),
    and saves it to the store at most every half second."""

    def __init__(self, db: Database, version_id: str, cap: int) -> None:
        self.db = db
        self.version_id = version_id
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self._saved_at = 0.0

    def add(self, text: str) -> None:
        """Build output: kept while under the cap."""
        if self.truncated:
            return
        if self.size + len(text) > self.cap:
            text = text[: max(0, self.cap - self.size)]
            self.truncated = True
        self._append(text)
        if self.truncated:
            self._append(f"\n[build log truncated: over {self.cap} bytes; the build goes on]\n")

    def note(self, text: str) -> None:
        """The executor's own line: always kept."""
        self._append(text)

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if time.monotonic() - self._saved_at >= LOG_FLUSH_INTERVAL_S:
            self.save()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def save(self, **final: Any) -> None:
        with self.db.session() as session:
            version_store.update_build(session, self.version_id, log=self.text, **final)
        self._saved_at = time.monotonic()


class Builder:
    """Runs builds on a pool of ``max_concurrent_builds`` threads; ``submit`` returns at once.

    ``on_active(version_id)`` is called after a version became ACTIVE (the image GC hooks in);
    ``on_pushed(version_id)`` after its image was pushed, before the build waits for the
    nodes to pull it (this process's pre-puller hooks in).
    """

    def __init__(
        self,
        db: Database,
        engine: Engine,
        settings: Settings,
        metrics: Metrics,
        *,
        import_check: ImportCheck | None = None,
        source_scan: SourceScanner | None = None,
    ) -> None:
        """``import_check(image_id, on_output)`` proves a built image loads its plugin
        (``executor.sandbox.import_check``); ``source_scan`` reads a source archive's
        imports for the build's import warnings and compiles its bytecode for the image.
        Without them, none of these is made."""
        self.metrics = metrics
        self.db = db
        self.engine = engine
        self.settings = settings
        self.registry = Registry.configured(settings.images)
        self.on_active: list[Callable[[str], object]] = []
        self.on_pushed: list[Callable[[str], object]] = []
        self.checks = ImageChecks(engine, settings, import_check, source_scan)
        self._stopping = threading.Event()
        self.distribution = Distribution(
            db,
            engine,
            settings.images.registry_distribute_timeout_s,
            settings.runs.lease_s,
            self._stopping,
        )
        self._pool = ThreadPoolExecutor(settings.build.max_concurrent, "build")
        self._count_lock = threading.Lock()
        self._running = 0
        # The most builds this builder ever ran at once: its own record of the limit holding.
        self.peak_running = 0

    def submit(self, version_id: str) -> Future[None]:
        return self._pool.submit(self.build, version_id)

    def resume_unfinished(self) -> list[str]:
        """Build again every version a previous process left DEPLOYING; their ids."""
        with self.db.session() as session:
            pending = version_store.unfinished_builds(session)
        for version_id in pending:
            self.submit(version_id)
        return pending

    def build(self, version_id: str) -> None:
        """Build one version and record ACTIVE or FAILED with the full log."""
        with self._count_lock:
            self._running += 1
            self.peak_running = max(self.peak_running, self._running)
        try:
            self._build(version_id)
        finally:
            with self._count_lock:
                self._running -= 1

    def _build(self, version_id: str) -> None:
        build = self._load(version_id)
        log_ = BuildLog(self.db, version_id, self.settings.build.log_cap_bytes)
        if build.resumed_log:
            log_.note(build.resumed_log + "\n--- build restarted after an executor restart\n")
        flavor_image = self.settings.images.flavor_image(build.context.runtime)
        log_.note(
            step_line(
                f"Building image {build.context.tag} FROM {flavor_image} "
                f"(runtime flavor {build.context.runtime})"
            )
        )
        started = time.monotonic()
        try:
            scanned = self.checks.scan_source(build.context, log_.note)
            context = build.context
            if scanned is not None:
                for warning in scanned.scan.bytecode.warnings:
                    log_.add(warning + "\n")
                context = replace(context, bytecode=scanned.scan.bytecode.files)
            image_id = self._run_build(context, log_)
            installed = self.checks.installed(context, image_id)
            self.checks.warn_imports(context, installed, scanned, log_.note)
            self.checks.check_import(build.context, image_id, log_.note, log_.add)
            digest = self._push(build.context, image_id, log_)
            if digest is not None:
                pushed = functools.partial(_call_hooks, self.on_pushed, version_id)
                self.distribution.wait(version_id, digest, log_.note, pushed)
        except BuildInterrupted:
            log_.note("\n--- build stopped: the executor is shutting down; it resumes at start\n")
            log_.save()
            return
        except ExecutorError as exc:
            log_.note(f"\nBUILD FAILED: {exc.message}\n")
            log_.save(status=BuildStatus.FAILED, error=exc.message)
            self.metrics.builds.labels(BuildStatus.FAILED).inc()
            return
        except Exception as exc:  # a build must end FAILED, never stay DEPLOYING
            log.exception("build of version %s crashed", version_id)
            log_.note(f"\nBUILD FAILED: internal error: {exc}\n")
            log_.save(status=BuildStatus.FAILED, error=f"internal error: {exc}")
            self.metrics.builds.labels(BuildStatus.FAILED).inc()
            return
        took = seconds(time.monotonic() - started)
        log_.note(step_line(f"Built {build.context.tag} ({image_id}) in {took}"))
        log_.save(
            status=BuildStatus.ACTIVE,
            image_id=image_id,
            image_tag=build.context.tag,
            image_digest=digest,
            freeze=installed.freeze,
        )
        self.metrics.builds.labels(BuildStatus.ACTIVE).inc()
        _call_hooks(self.on_active, version_id)

    def _load(self, version_id: str) -> _Loaded:
        with self.db.session() as session:
            version = version_store.version_to_build(session, version_id)
            return _Loaded(
                BuildContext(
                    version_id=version.id,
                    plugin_id=version.plugin_id,
                    number=version.number,
                    requirements=version.requirements,
                    source=version.source,
                    runtime=RuntimeFlavor(version.runtime),
                ),
                version.build_log,
            )

    def _run_build(self, build: BuildContext, log_: BuildLog) -> str:
        return build_plugin_image(
            self.engine, self.settings, build, log_.add, self._stopping, log_.note
        )

    def _push(self, build: BuildContext, image_id: str, log_: BuildLog) -> str | None:
        """With a registry: push the image (a version is ACTIVE only once pushed); the
        pushed ``repo@sha256:...``. Without one: None, the image stays on this engine."""
        if self.registry is None:
            return None
        with timed_step(log_.note, f"Pushing to the registry {self.registry.address}"):
            digest = self.registry.push(self.engine, image_id, build.tag)
        log_.note(f"Pushed {digest}\n")
        return digest

    def close(self) -> None:
        """Stop running builds (they stay DEPLOYING and resume at the next start)."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Loaded:
    def __init__(self, context: BuildContext, resumed_log: str) -> None:
        self.context = context
        self.resumed_log = resumed_log
