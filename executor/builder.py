"""Builds one image per plugin version, in the background.

Layers, in order: the runtime base image, the requirements (installed by pip in their own
layer, so a code-only version or another plugin with the same requirements reuses it), then
the code. The whole output is kept as the version's build log.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from executor.engine import Engine, engine_errors
from executor.errors import BuildFailed, ExecutorError
from executor.metrics import Metrics
from executor.settings import Settings
from executor.store import plugins as plugin_store
from executor.store.db import Database

__all__ = ["BuildContext", "Builder", "dockerfile"]

log = logging.getLogger(__name__)

LOG_FLUSH_INTERVAL_S = 0.5
CA_FILE = "build-ca.pem"
VERSION_LABEL = "io.plugin-executor.version"


@dataclass(frozen=True)
class BuildContext:
    """What one build needs, read from the store before the build starts."""

    version_id: str
    plugin_id: str
    number: int
    requirements: str
    source: bytes

    @property
    def tag(self) -> str:
        return f"plugin-executor/p-{self.plugin_id}:v{self.number}"


def dockerfile(settings: Settings, has_requirements: bool) -> str:
    """The Dockerfile of a plugin image; the RUN line is identical for identical settings,
    so the engine's layer cache is shared across plugins with the same requirements."""
    lines = [f"FROM {settings.runtime_image}", "USER root"]
    if has_requirements:
        cert = f" --cert /opt/plugin/{CA_FILE}" if settings.build_ca_bundle else ""
        if settings.build_ca_bundle:
            lines.append(f"COPY {CA_FILE} /opt/plugin/{CA_FILE}")
        lines += [
            "COPY requirements.txt /opt/plugin/requirements.txt",
            "RUN PIP_CONFIG_FILE=/dev/null pip install --isolated --no-input --no-cache-dir"
            f" --disable-pip-version-check --index-url {settings.build_index_url}{cert}"
            " -r /opt/plugin/requirements.txt",
        ]
    lines += [
        "ADD source.tar.gz /opt/plugin/plugin_code/",
        "RUN chmod -R a+rX,go-w /opt/plugin/plugin_code"
        " && python3 -m compileall -q /opt/plugin/plugin_code",
        "USER 10000:10000",
    ]
    return "\n".join(lines) + "\n"


def context_archive(settings: Settings, build: BuildContext) -> bytes:
    """The build context: Dockerfile, requirements, CA bundle and the plugin source."""
    files: dict[str, bytes] = {
        "Dockerfile": dockerfile(settings, bool(build.requirements.strip())).encode(),
        "source.tar.gz": build.source,
    }
    if build.requirements.strip():
        files["requirements.txt"] = build.requirements.encode()
        if settings.build_ca_bundle:
            files[CA_FILE] = settings.build_ca_bundle.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class BuildLog:
    """Collects build output and saves it to the store at most every half second."""

    def __init__(self, db: Database, version_id: str) -> None:
        self.db = db
        self.version_id = version_id
        self.parts: list[str] = []
        self._saved_at = 0.0

    def add(self, text: str) -> None:
        self.parts.append(text)
        if time.monotonic() - self._saved_at >= LOG_FLUSH_INTERVAL_S:
            self.save()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def save(self, **final: str | None) -> None:
        with self.db.session() as session:
            plugin_store.update_build(session, self.version_id, log=self.text, **final)
        self._saved_at = time.monotonic()


class Builder:
    """Runs builds on a small thread pool; ``submit`` returns at once."""

    def __init__(self, db: Database, engine: Engine, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        self.db = db
        self.engine = engine
        self.settings = settings
        self._pool = ThreadPoolExecutor(settings.max_concurrent_builds, "build")

    def submit(self, version_id: str) -> Future[None]:
        return self._pool.submit(self.build, version_id)

    def resume_unfinished(self) -> None:
        """Build again every version a previous process left DEPLOYING."""
        with self.db.session() as session:
            pending = plugin_store.unfinished_builds(session)
        for version_id in pending:
            self.submit(version_id)

    def build(self, version_id: str) -> None:
        """Build one version and record ACTIVE or FAILED with the full log."""
        build = self._load(version_id)
        log_ = BuildLog(self.db, version_id)
        log_.add(f"Building image {build.tag}\n")
        try:
            image_id = self._run_build(build, log_)
        except ExecutorError as exc:
            log_.add(f"\nBUILD FAILED: {exc.message}\n")
            log_.save(status="FAILED", error=exc.message)
            self.metrics.builds.labels("FAILED").inc()
            return
        except Exception as exc:  # a build must end FAILED, never stay DEPLOYING
            log.exception("build of version %s crashed", version_id)
            log_.add(f"\nBUILD FAILED: internal error: {exc}\n")
            log_.save(status="FAILED", error=f"internal error: {exc}")
            self.metrics.builds.labels("FAILED").inc()
            return
        log_.add(f"Built {build.tag} ({image_id})\n")
        log_.save(status="ACTIVE", image_id=image_id, image_tag=build.tag)
        self.metrics.builds.labels("ACTIVE").inc()

    def _load(self, version_id: str) -> BuildContext:
        with self.db.session() as session:
            version = plugin_store.get_version(session, version_id)
            return BuildContext(
                version_id=version.id,
                plugin_id=version.plugin_id,
                number=version.number,
                requirements=version.requirements,
                source=version.source,
            )

    def _run_build(self, build: BuildContext, log_: BuildLog) -> str:
        context = context_archive(self.settings, build)
        with engine_errors("building the plugin image"):
            stream = self.engine.api.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                tag=build.tag,
                rm=True,
                forcerm=True,
                decode=True,
                timeout=int(self.settings.build_timeout_s),
                labels=self.engine.labels(**{VERSION_LABEL: build.version_id}),
                use_config_proxy=False,
            )
            for chunk in stream:
                if "stream" in chunk:
                    log_.add(str(chunk["stream"]))
                if "error" in chunk:
                    raise BuildFailed(f"{str(chunk['error']).strip()}: read the build log above")
            image = self.engine.api.inspect_image(build.tag)  # type: ignore[no-untyped-call]
        return str(image["Id"])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
