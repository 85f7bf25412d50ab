"""Uploads: a plugin's new versions, checked statically, stored, and built in the background."""

from __future__ import annotations

from executor.build.builder import Builder
from executor.build.flavors import Flavor, describe_flavors
from executor.errors import checked_identifier
from executor.identifiers import IdKind
from executor.intake.checker import UploadChecker
from executor.intake.manifest import choose_flavor
from executor.intake.upload import UploadLimits, source_archive
from executor.service.audit import record
from executor.statuses import BuildStatus
from executor.store import plugins as plugin_store
from executor.store import tenants as tenant_store
from executor.store import versions as version_store
from executor.store.db import Database
from executor.store.tables import PluginVersion
from executor.tenancy.access import Caller
from executor.tenancy.quotas import quotas_for
from executor.tenancy.ratelimit import Limiter

__all__ = ["Uploads"]


class Uploads:
    """Uploads become versions that the builder builds in the background.

    Each method acts for a ``Caller``, on its tenant's plugins only, and records the
    change in the audit trail in the same transaction.
    """

    def __init__(
        self, db: Database, builder: Builder, limiter: Limiter, checker: UploadChecker
    ) -> None:
        self.db = db
        self.builder = builder
        self.limiter = limiter
        self.checker = checker

    def upload(
        self, caller: Caller, name: str, filename: str, data: bytes, runtime: str | None = None
    ) -> PluginVersion:
        """``upload_or_reuse``'s version."""
        return self.upload_or_reuse(caller, name, filename, data, runtime)[0]

    def upload_or_reuse(
        self, caller: Caller, name: str, filename: str, data: bytes, runtime: str | None = None
    ) -> tuple[PluginVersion, bool]:
        """Check the upload statically, store it as the plugin's next version, start its build.

        The same files for the same runtime flavor as a version that is ACTIVE (image kept)
        or still building make no new version and no build: that version is reused (and
        made current when ACTIVE, as a new one would be); the second item says so.

        ``runtime`` (the upload's form field) names its flavor, before plugin.toml's.
        Blocking (waiting for a check worker, the check, a write): callers on an event loop
        run it in a thread. The upload-bytes rate counts what the upload unpacks to (at
        least its own size), charged once the check counted it.
        """
        if caller.key_id is not None:
            self.limiter.upload(caller.key_id, len(data))
        name = checked_identifier(IdKind.PLUGIN, name, "name")
        settings = self.builder.settings
        limits = UploadLimits(
            max_file_bytes=settings.uploads.max_file_bytes,
            allow_url_requirements=settings.build.allow_url_requirements,
            allow_requirements=settings.build.allow_requirements,
        )
        checked = self.checker.check(caller.tenant_id, filename, data, limits)
        if caller.key_id is not None and checked.unpacked_bytes > len(data):
            self.limiter.upload(caller.key_id, checked.unpacked_bytes - len(data))
        source = checked.result()
        flavor = choose_flavor(runtime, source.runtime, settings.images.runtime_default_flavor)

        with self.db.session() as session:
            same = plugin_store.same_source(session, caller.tenant_id, name, source.sha256, flavor)
            if same is not None:
                if same.status == BuildStatus.ACTIVE:
                    version_store.serve(session, same)
                record(
                    session,
                    caller,
                    "plugin.upload",
                    name,
                    detail={"version": same.number, "reused": True},
                )
                return same, True
            quotas = quotas_for(
                tenant_store.get_tenant(session, caller.tenant_id), self.builder.settings.tenancy
            )
            version = plugin_store.add_version(
                session,
                caller.tenant_id,
                name,
                max_plugins=quotas.max_plugins,
                max_versions=quotas.max_versions,
                handlers=list(source.handlers),
                requirements=source.requirements,
                source_sha256=source.sha256,
                source=source_archive(source),
                runtime=flavor,
            )
            record(session, caller, "plugin.upload", name, detail={"version": version.number})
        self.builder.submit(version.id)
        return version, False

    def runtimes(self) -> list[Flavor]:
        """The runtime flavors, with their package versions (from their image labels)."""
        return describe_flavors(self.builder.engine, self.builder.settings.images)
