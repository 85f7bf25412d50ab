"""The settings of what becomes an image: uploads' checks, builds, runtime images, registry."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from executor.settings.base import MIB, Group, group_config
from executor.settings.checks import NO_CA_BUNDLE, REGISTRY_ADDRESS, system_ca_bundle
from executor.statuses import RuntimeFlavor

__all__ = ["BuildSettings", "ImageSettings", "UploadSettings"]


class UploadSettings(Group):
    """Upload checks: unpacking and parsing run in worker processes (docs/security.md)."""

    model_config = group_config("EXECUTOR_UPLOAD_")
    name: ClassVar[str] = "uploads"

    max_file_bytes: int = Field(
        MIB,
        ge=1024,
        description="Largest source file (.py, plugin.toml, requirements.txt) of an upload; "
        "a larger one answers 413 `upload_too_large` before it is parsed.",
    )
    check_workers: int = Field(
        2, ge=1, description="Worker processes that unpack and parse uploads, shared by tenants."
    )
    check_per_tenant: int = Field(
        1,
        ge=1,
        description="Upload check workers one tenant may hold at once (at most "
        "upload_check_workers); its further uploads wait, a few at most, then answer 429 "
        "`upload_check_busy`.",
    )
    check_memory_bytes: int = Field(
        1024 * MIB,
        ge=128 * MIB,
        description="Address space (RLIMIT_AS) of one upload check worker; an upload whose "
        "check needs more answers 422 `upload_check_limit`.",
    )
    check_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Wall time of one upload's check; a longer one is stopped and answers 422 "
        "`upload_check_limit`.",
    )

    @model_validator(mode="after")
    def _tenant_share_fits_the_pool(self) -> UploadSettings:
        if self.check_per_tenant > self.check_workers:
            raise ValueError(
                f"EXECUTOR_UPLOAD_CHECK_PER_TENANT={self.check_per_tenant} is above "
                f"EXECUTOR_UPLOAD_CHECK_WORKERS={self.check_workers}: a tenant's share "
                "is part of the pool; lower it or add workers"
            )
        return self


class BuildSettings(Group):
    """How an upload's image is built: the index, certificates, limits of a build step."""

    model_config = group_config("EXECUTOR_BUILD_")
    name: ClassVar[str] = "build"

    index_url: str = Field(
        "https://pypi.org/simple", description="Package index pip installs requirements from."
    )
    ca_bundle: Path | None = Field(
        default_factory=system_ca_bundle,
        description="CA bundle (PEM) pip trusts for the index; empty or 'none': pip's own "
        "certificates only.",
    )
    timeout_s: float = Field(
        600.0, gt=0, description="Wall time of one build; past it the build is stopped, FAILED."
    )
    max_concurrent: int = Field(
        2,
        ge=1,
        validation_alias="EXECUTOR_MAX_CONCURRENT_BUILDS",
        description="Builds running at once.",
    )
    memory_mib: int = Field(2048, ge=64, description="Memory limit of a build step.")
    cpus: int = Field(1, ge=1, description="CPU cores a build step may use.")
    log_cap_bytes: int = Field(
        1 * MIB, ge=1024, description="Build log bytes kept; the rest is cut with a note."
    )
    network: str = Field(
        "bridge", description="Docker network builds use to reach the index (never 'host')."
    )
    wheelhouse: Path | None = Field(
        None,
        description="Offline mode: folder of wheels; builds use --no-index --find-links on it.",
    )
    allow_url_requirements: bool = Field(
        False, description="Accept https:// and git+https:// lines in requirements.txt."
    )
    allow_requirements: bool = Field(
        True, description="false: uploads with a requirements.txt are refused (flavors only)."
    )
    import_timeout_s: float = Field(
        60.0, gt=0, description="Wall time of the build's import check of main.py."
    )

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _no_ca_bundle(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in NO_CA_BUNDLE:
            return None  # the operator's explicit opt-out of the system bundle
        return value

    @field_validator("network")
    @classmethod
    def _not_host_network(cls, value: str) -> str:
        if value == "host":
            raise ValueError("builds never use the host network: use 'bridge' or a user network")
        return value


class ImageSettings(Group):
    """The runtime images plugins are built on, and the registry built images go to."""

    name: ClassVar[str] = "images"

    runtime_image: str = Field(
        "plugin-executor-runtime:latest",
        description="The runtime base image; flavor F's image is its name + '-F', same tag "
        "(plugin-executor-runtime-kili:latest), built by deploy/build-flavor-images.sh.",
    )
    runtime_default_flavor: RuntimeFlavor = Field(
        RuntimeFlavor.KILI, description="Flavor of an upload that names none (docs/flavors.md)."
    )
    keep_versions: int = Field(
        5, ge=1, description="Newest versions per plugin whose images are kept (GC)."
    )
    registry: str | None = Field(
        None,
        description="OCI registry (host:port[/prefix]) builds push to; runs pull by digest.",
    )
    registry_user: str | None = Field(None, description="User name for the registry.")
    registry_password: SecretStr | None = Field(None, description="Password for the registry.")
    registry_ca_bundle: Path | None = Field(
        None, description="CA bundle (PEM) the executor trusts for the registry's HTTPS API."
    )
    registry_distribute_timeout_s: float = Field(
        30.0,
        ge=0,
        description="After a push, how long a build waits for every live node to pull the "
        "image before the version becomes ACTIVE (0: no wait); a node that did not pulls it "
        "at its first run.",
    )

    @field_validator("registry")
    @classmethod
    def _registry_address(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY_ADDRESS.fullmatch(value):
            raise ValueError(
                f"{value!r} is not host:port[/prefix] (no scheme, e.g. 'registry.lan:5443' or "
                "'10.0.0.5:5443/team')"
            )
        return value

    @model_validator(mode="after")
    def _registry_credentials_together(self) -> ImageSettings:
        if (self.registry_user is None) != (self.registry_password is None):
            raise ValueError(
                "EXECUTOR_REGISTRY_USER and EXECUTOR_REGISTRY_PASSWORD go together: set both "
                "or neither"
            )
        return self

    def flavor_image(self, flavor: RuntimeFlavor) -> str:
        """The image of ``flavor``: ``runtime_image``'s name + ``-<flavor>``, same tag."""
        name, colon, tag = self.runtime_image.rpartition(":")
        if not colon or "/" in tag:  # no tag, or the colon was a registry port
            name, tag = self.runtime_image, "latest"
        return f"{name}-{flavor}:{tag}"
