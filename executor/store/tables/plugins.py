"""Plugins, their versions, webhooks and activations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from executor.identifiers import plugin_name_key
from executor.statuses import BuildStatus, PluginKind
from executor.store.tables.base import Base, new_id, tenant_column, utcnow

__all__ = [
    "Activation",
    "Plugin",
    "PluginVersion",
    "Webhook",
]


def _name_key(context: Any) -> str:
    """The new plugin row's ``plugin_name_key``: set by every insert, so none can miss it."""
    return plugin_name_key(context.get_current_parameters()["name"])


class Plugin(Base):
    __tablename__ = "plugins"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_plugins_tenant_name"),
        # One plugin per name up to case and Unicode form (executor.identifiers).
        Index("uq_plugins_tenant_name_key", "tenant_id", "name_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(64))  # Unicode NFC
    name_key: Mapped[str] = mapped_column(String(64), default=_name_key)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by rollback: the version events run. None: the newest ACTIVE version.
    current_version_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # Per-plugin sandbox overrides (executor.run.limits.PluginLimits); None: the operator's.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    kind: Mapped[str] = mapped_column(String(16), default=PluginKind.CODE.value)

    # No relationship loads itself: the store loads what its callers read (selectinload).
    # Read unloaded, a collection raises; a plugin (many-to-one) is taken from the session's
    # identity map, and raises if that would need SQL. So no SQL runs outside the store.
    versions: Mapped[list[PluginVersion]] = relationship(
        back_populates="plugin",
        order_by="PluginVersion.number",
        cascade="all, delete-orphan",
        lazy="raise",
    )


class PluginVersion(Base):
    __tablename__ = "plugin_versions"
    __table_args__ = (UniqueConstraint("plugin_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    plugin_id: Mapped[str] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=BuildStatus.DEPLOYING.value)
    handlers: Mapped[list[str]] = mapped_column(default=list)
    requirements: Mapped[str] = mapped_column(Text, default="")
    # The runtime flavor (executor.build.flavors) its image builds FROM.
    runtime: Mapped[str] = mapped_column(String(32), default="minimal")
    source_sha256: Mapped[str] = mapped_column(String(64))
    # The source (up to the upload cap) and the build log are read by the builder and the
    # build-log routes only, never on the hot paths that load versions (event ingest,
    # activation listing, warm-pool sync): deferred, and raising if read without an
    # explicit undefer, so a new hot path cannot start loading them unnoticed.
    source: Mapped[bytes] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    image_id: Mapped[str | None] = mapped_column(String(80), default=None)
    image_tag: Mapped[str | None] = mapped_column(String(200), default=None)
    # With a registry: the pushed image as ``repo@sha256:...``, the only reference runs use.
    image_digest: Mapped[str | None] = mapped_column(String(400), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    build_log: Mapped[str] = mapped_column(Text, default="", deferred=True, deferred_raiseload=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # `pip freeze` in the built image: the resolved dependency list.
    pip_freeze: Mapped[str | None] = mapped_column(Text, default=None)
    # Set when the image GC removed this version's image (it can no longer run).
    image_removed_at: Mapped[datetime | None] = mapped_column(default=None)

    plugin: Mapped[Plugin] = relationship(back_populates="versions", lazy="raise_on_sql")

    @property
    def run_image(self) -> str | None:
        """What a run starts: the registry digest when the image was pushed, else the tag."""
        return self.image_digest or self.image_tag


class VersionPull(Base):
    """A node that holds a pushed version's image, recorded by its pre-puller while the
    build waits for the nodes to hold it before the version becomes ACTIVE (with a
    registry; ``executor.store.distribution``)."""

    __tablename__ = "version_pulls"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("plugin_versions.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    pulled_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    """Where a webhook version's events go. ``header`` (the Authorization value sent) and
    ``signing_secret`` are secrets: never logged, never returned in full."""

    __tablename__ = "webhooks"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("plugin_versions.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(Text)
    header: Mapped[str | None] = mapped_column(Text, default=None)
    signing_secret: Mapped[str] = mapped_column(String(100))
    # As given (Kili's arguments); the version's ``handlers`` hold both, for event matching.
    handler_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    event_matcher: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class Activation(Base):
    __tablename__ = "activations"
    __table_args__ = (UniqueConstraint("plugin_id", "project_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    plugin_id: Mapped[str] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(200), index=True)
    # None means "the handler types of the version that runs".
    event_matcher: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # Plugin failures (failed, timed_out, oom_killed) are retried only this many times.
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    # A pinned version number; None follows the plugin's current version.
    version_number: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Placement: the OCI runtime its runs need (None: the operator's) and the labels a
    # node must carry to claim them (None: any node).
    runtime: Mapped[str | None] = mapped_column(String(40), default=None)
    node_selector: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    plugin: Mapped[Plugin] = relationship(lazy="raise_on_sql")
