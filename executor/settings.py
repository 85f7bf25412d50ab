"""All tunables of the executor, read from ``EXECUTOR_*`` environment variables.

Nothing else in the package reads ``os.environ``: components receive a ``Settings``.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from executor.identifiers import NodeId
from executor.statuses import RuntimeFlavor

__all__ = ["PlatformTarget", "SandboxProfile", "Settings"]

MIB = 1024 * 1024
# An OCI registry as the engine names it: host[:port], then optional path components.
REGISTRY_ADDRESS = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*")
# Room above the log cap the engine's copy of a run's output keeps (a line past the cap).
ENGINE_LOG_SLACK_BYTES = 64 * 1024
PROJECT_PLACEHOLDER = "{project_id}"
# Where Debian/Ubuntu, RHEL/Fedora, openSUSE and Alpine keep the system CA bundle.
SYSTEM_CA_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
    Path("/etc/ssl/ca-bundle.pem"),
    Path("/etc/ssl/cert.pem"),
)
# What EXECUTOR_BUILD_CA_BUNDLE is set to for "no bundle: pip's own certificates".
NO_CA_BUNDLE = ("", "none")


def system_ca_bundle() -> Path | None:
    """The host's CA bundle, if it has one at a usual place (a proxy that inspects TLS is
    trusted there; pip's own bundle does not know it)."""
    return next((path for path in SYSTEM_CA_BUNDLES if path.is_file()), None)


# A wildcard listen address is no address to reach: the loopback of its family is.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def check_public_url(url: str | None) -> str | None:
    """Refuse a public URL that is not an http(s) origin (and path prefix) alone."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {url!r} must be http:// or https:// with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"public URL {url!r} must not carry a query, a fragment or user info")
    return url


def check_platform_url(url: str) -> str:
    """Refuse a platform API base URL the gateway could not forward to safely."""
    parts = urlsplit(url.replace(PROJECT_PLACEHOLDER, "p"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"platform API URL {url!r} must be http:// or https:// with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"platform API URL {url!r} must not carry a query, a fragment or user info: "
            "put the credential in EXECUTOR_PLATFORM_CREDENTIAL"
        )
    return url


class PlatformTarget(BaseModel):
    """The platform API one project's plugins reach through the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL; only paths under it are forwarded.")
    credential: SecretStr | None = Field(
        None, description="Operator credential for this project; default: the global one."
    )

    _check_url = field_validator("url")(check_platform_url)


class SandboxProfile(BaseSettings):
    """Resource limits and hardening of one plugin container (docs/architecture.md: the
    sandbox profile)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_SANDBOX_", frozen=True)

    memory_mib: int = Field(512, ge=16, description="Memory limit, no swap on top of it.")
    cpus: float = Field(1.0, gt=0, description="CPU quota in cores.")
    pids: int = Field(128, ge=8, description="Maximum number of processes and threads.")
    timeout_s: float = Field(60.0, gt=0, description="Wall time before SIGKILL.")
    tmpfs_mib: int = Field(64, ge=1, description="Size of the /tmp tmpfs.")
    shm_mib: int = Field(
        64, ge=1, description="Size of the /dev/shm tmpfs; what it holds counts as memory."
    )
    nofile: int = Field(1024, ge=64, description="Open file descriptor limit.")
    log_cap_bytes: int = Field(1 * MIB, ge=1024, description="Log bytes kept per invocation.")
    envelope_cap_bytes: int = Field(5 * MIB, ge=1024, description="Largest envelope on stdin.")
    engine_log_max_bytes: int = Field(
        4 * MIB,
        description="Disk the engine's copy of one container's output may take (local log "
        "driver, two files of half this), read back after an executor restart; at least "
        "2 x (log_cap_bytes + 64 KiB).",
    )
    user: str = Field("10000:10000", description="uid:gid the plugin runs as (never root).")
    oci_runtime: str = Field(
        "runc",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="OCI runtime registered with dockerd: runc, or runsc (gVisor).",
    )

    @model_validator(mode="after")
    def _engine_log_holds_the_log_cap(self) -> SandboxProfile:
        # Then a rotated engine copy means the run wrote past its log cap (see Sandbox.watch).
        needed = 2 * (self.log_cap_bytes + ENGINE_LOG_SLACK_BYTES)
        if self.engine_log_max_bytes < needed:
            raise ValueError(
                f"engine_log_max_bytes={self.engine_log_max_bytes} is below 2 x (log_cap_bytes "
                f"+ {ENGINE_LOG_SLACK_BYTES}) = {needed}: the engine's copy of a run's output "
                "must hold what the log cap keeps; set EXECUTOR_SANDBOX_ENGINE_LOG_MAX_BYTES to "
                f"at least {needed}"
            )
        return self

    @field_validator("user")
    @classmethod
    def _not_root(cls, value: str) -> str:
        uid, _, gid = value.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ValueError(f"user {value!r} must be numeric uid[:gid], e.g. 10000:10000")
        if int(uid) == 0 or (gid and int(gid) == 0):
            raise ValueError(f"user {value!r} is root: plugins never run as uid or gid 0")
        return value


class Settings(BaseSettings):
    """Executor settings; each field is the env var ``EXECUTOR_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", frozen=True)

    # --- server
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8700, description="Port the API listens on.")
    public_url: str | None = Field(
        None,
        description="URL clients reach the API at, for the URLs it answers (redirects, "
        "GraphQL upload URLs), never taken from a request's Host header; default: "
        "http://HOST:PORT (127.0.0.1 for a wildcard HOST).",
    )
    data_dir: Path = Field(Path("var"), description="Database, operator key and build work.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in data_dir."
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        description="Store connections a process keeps open; under more concurrent requests "
        "it opens up to twice as many again, closed as they are returned.",
    )
    operator_key: SecretStr | None = Field(
        None, description="Operator API key; generated at first start when unset."
    )
    graphql_path: str = Field(
        "/graphql",
        pattern=r"^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$",
        description="Path of the Kili-compatible GraphQL API (the Kili SDK's api_endpoint).",
    )
    graphql_max_cost: int = Field(
        50_000,
        ge=1,
        description="The most a GraphQL document may cost (docs/kili.md: 1,000 a root field, "
        "1 a field per list item); a dearer one is refused with query_too_costly before it "
        "runs.",
    )
    graphql_cost_per_token: int = Field(
        2_000,
        ge=1,
        description="GraphQL cost a tenant key's request token buys: a document takes "
        "ceil(cost / this) tokens of key_requests_per_minute (one Kili SDK call takes 1).",
    )

    # --- images and builds
    runtime_image: str = Field(
        "plugin-executor-runtime:latest",
        description="The runtime base image; flavor F's image is its name + '-F', same tag "
        "(plugin-executor-runtime-kili:latest), built by deploy/build-flavor-images.sh.",
    )
    runtime_default_flavor: RuntimeFlavor = Field(
        RuntimeFlavor.KILI, description="Flavor of an upload that names none (docs/flavors.md)."
    )
    build_index_url: str = Field(
        "https://pypi.org/simple", description="Package index pip installs requirements from."
    )
    build_ca_bundle: Path | None = Field(
        default_factory=system_ca_bundle,
        description="CA bundle (PEM) pip trusts for the index; empty or 'none': pip's own "
        "certificates only.",
    )
    build_timeout_s: float = Field(
        600.0, gt=0, description="Wall time of one build; past it the build is stopped, FAILED."
    )
    max_concurrent_builds: int = Field(2, ge=1, description="Builds running at once.")
    build_memory_mib: int = Field(2048, ge=64, description="Memory limit of a build step.")
    build_cpus: int = Field(1, ge=1, description="CPU cores a build step may use.")
    build_log_cap_bytes: int = Field(
        1 * MIB, ge=1024, description="Build log bytes kept; the rest is cut with a note."
    )
    build_network: str = Field(
        "bridge", description="Docker network builds use to reach the index (never 'host')."
    )
    build_wheelhouse: Path | None = Field(
        None,
        description="Offline mode: folder of wheels; builds use --no-index --find-links on it.",
    )
    build_allow_url_requirements: bool = Field(
        False, description="Accept https:// and git+https:// lines in requirements.txt."
    )
    build_allow_requirements: bool = Field(
        True, description="false: uploads with a requirements.txt are refused (flavors only)."
    )
    build_import_timeout_s: float = Field(
        60.0, gt=0, description="Wall time of the build's import check of main.py."
    )
    # --- upload checks: unpacking and parsing run in worker processes (docs/security.md)
    upload_max_file_bytes: int = Field(
        MIB,
        ge=1024,
        description="Largest source file (.py, plugin.toml, requirements.txt) of an upload; "
        "a larger one answers 413 `upload_too_large` before it is parsed.",
    )
    upload_check_workers: int = Field(
        2, ge=1, description="Worker processes that unpack and parse uploads, shared by tenants."
    )
    upload_check_per_tenant: int = Field(
        1,
        ge=1,
        description="Upload check workers one tenant may hold at once (at most "
        "upload_check_workers); its further uploads wait, a few at most, then answer 429 "
        "`upload_check_busy`.",
    )
    upload_check_memory_bytes: int = Field(
        1024 * MIB,
        ge=128 * MIB,
        description="Address space (RLIMIT_AS) of one upload check worker; an upload whose "
        "check needs more answers 422 `upload_check_limit`.",
    )
    upload_check_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Wall time of one upload's check; a longer one is stopped and answers 422 "
        "`upload_check_limit`.",
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

    # --- runs
    max_concurrent_runs: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Plugin containers running at once.",
    )
    max_runs_per_plugin: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Containers of one plugin running at once, on all nodes together.",
    )
    max_runs_per_project: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Containers for one project running at once, on all nodes together.",
    )
    dispatch: bool = Field(
        True,
        description="Run queued invocations. false: this process serves the API and builds "
        "only; events stay queued for a process that dispatches (same store).",
    )
    dispatch_poll_s: float = Field(1.0, gt=0, description="Queue poll interval (fallback).")
    lease_s: float = Field(30.0, gt=0, description="Lease on a running invocation; renewed.")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM, wait this long for runs before handing them back."
    )
    retry_max_attempts: int = Field(
        5,
        ge=1,
        description="Attempts of a run whose executor stopped (its lease expired), and of a "
        "webhook delivery, before 'dead'.",
    )
    infra_retry_budget_s: float = Field(
        600.0,
        gt=0,
        description="How long a run keeps being retried through infrastructure failures "
        "(registry, Docker Engine, store unreachable; container stopped from outside), from "
        "its first one, before 'dead'.",
    )
    retry_base_s: float = Field(1.0, gt=0, description="First retry delay; doubles each time.")
    retry_max_s: float = Field(60.0, gt=0, description="Longest retry delay.")
    max_event_bytes: int = Field(1024 * 1024, ge=1024, description="Largest event body.")
    # At most 200: the envelope serializer gives up near 256 levels (executor.intake.json_scan).
    max_event_depth: int = Field(
        100,
        ge=2,
        le=200,
        description="Deepest nesting of objects and arrays in an event body (the body is "
        "level 1, its label level 2; at most 200); deeper events answer 422 `event_too_deep`.",
    )
    max_request_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest body of any other request (not uploads)."
    )
    warm_pool_size: int = Field(
        1, ge=0, description="Started containers kept waiting per active plugin version; 0: none."
    )
    warm_pool_memory_budget_mib: int = Field(
        2048, ge=0, description="Memory limit summed over all warm containers; caps the pools."
    )
    placement_grace_s: float = Field(
        2.0,
        ge=0,
        description="A new run of a version warm on another live node is left to that node "
        "this long by a node without a warm container of it; 0: no warm-aware placement.",
    )
    warm_pool_idle_s: float = Field(
        600.0, gt=0, description="A warm pool unused this long is emptied until its next event."
    )
    sandbox: SandboxProfile = Field(default_factory=SandboxProfile)

    # --- nodes (docs/scaling.md)
    node_id: NodeId | None = Field(
        None,
        description="This process's node id, on every container it creates; default: "
        "hostname-<engine id>. Each dispatching process on one engine needs its own.",
    )
    node_runtimes: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="OCI runtimes this node offers, comma-separated (e.g. runc); default: "
        "those the engine has registered.",
    )
    node_labels: dict[str, str] = Field(
        default_factory=dict,
        description='Labels an activation\'s node selector matches, JSON: {"zone": "a"}.',
    )
    clock_skew_warn_s: float = Field(
        5.0,
        gt=0,
        description="A node whose clock is off from the database's by more than this logs a "
        "warning (shown in `plugin-executor nodes`); leases and heartbeats use the "
        "database's clock either way.",
    )

    # --- platform API gateway (docs/gateway.md)
    platform_api_url: str = Field(
        "http://127.0.0.1:9000",
        description="Platform API base URL plugins reach through the gateway; "
        "'{project_id}' in it is replaced by the invocation's project.",
    )
    platform_credential: SecretStr | None = Field(
        None, description="Operator credential the gateway sends instead of the run token."
    )
    platform_projects: dict[str, PlatformTarget] = Field(
        default_factory=dict,
        description='Per-project overrides, JSON: {"<project>": {"url": ..., "credential": ...}}.',
    )
    platform_credential_header: str = Field(
        "Authorization", description="Header that carries the operator credential upstream."
    )
    platform_credential_prefix: str = Field(
        "X-API-Key: ", description="Text put before the credential in that header (Kili's)."
    )
    gateway_socket_dir: Path | None = Field(
        None, description="Folder of the gateway Unix socket; default: data_dir/run."
    )
    gateway_port: int = Field(
        8765, ge=1, le=65535, description="Port of the forwarder inside each plugin container."
    )
    gateway_max_calls: int = Field(1000, ge=1, description="Platform calls per invocation.")
    gateway_max_request_bytes: int = Field(
        1 * MIB, ge=1024, description="Largest request body a plugin may send."
    )
    gateway_max_response_bytes: int = Field(
        10 * MIB, ge=1024, description="Largest platform response body handed back."
    )
    gateway_upstream_timeout_s: float = Field(
        30.0, gt=0, description="Time limit of one forwarded call."
    )

    _check_url = field_validator("platform_api_url")(check_platform_url)

    # --- webhooks (docs/webhooks.md)
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (or host:port) webhooks may reach although they resolve to a "
        "loopback, link-local, private, unspecified or multicast address, JSON: "
        '["hooks.lan:8443"].',
    )
    webhook_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time limit of one delivery: connecting, sending and the answer's head.",
    )
    webhook_max_attempts: int = Field(
        5, ge=1, description="Deliveries of one event on 5xx, timeouts and connection errors."
    )
    webhook_pool_size: int = Field(
        16,
        ge=1,
        description="Webhook deliveries in flight at once on one executor, on threads of "
        "their own: a slow receiver holds one of these, never a plugin run slot.",
    )
    webhook_tenant_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of the webhook pool one tenant's deliveries may hold at once "
        "(at least one delivery), so one tenant's slow receivers leave the rest to others.",
    )

    # --- logs: live follow and retention
    log_follow_poll_s: float = Field(
        1.0, gt=0, description="Idle log stream re-reads the store (writes by other processes)."
    )
    build_log_poll_s: float = Field(0.5, gt=0, description="Build log stream re-read interval.")
    sse_heartbeat_s: float = Field(15.0, gt=0, description="Keep-alive comment on idle streams.")
    log_retention_days: float = Field(
        30.0, gt=0, description="Logs and finished invocations older than this are purged."
    )
    plugin_log_budget_mib: float = Field(
        1024.0, gt=0, description="Log bytes kept per plugin; its oldest runs go first."
    )
    retention_interval_s: float = Field(3600.0, gt=0, description="Time between purges.")
    retention_batch: int = Field(
        1000, ge=1, description="Rows deleted per short transaction (keeps ingest flowing)."
    )

    # --- tenants: abuse limits per API key, quotas per tenant (docs/tenants.md)
    key_requests_per_minute: int = Field(
        600, ge=1, description="Requests one tenant key may send a minute (the operator's: any)."
    )
    metrics_max_plugins: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Plugins (tenant and name) that get their own series in the per-plugin "
        "metrics of /metrics; runs of plugins seen after that many are counted under "
        'plugin="other" (their tenant kept), so a tenant creating plugins cannot grow '
        "Prometheus without bound.",
    )
    key_cache_s: float = Field(
        5.0,
        ge=0,
        description="Seconds a tenant key the store accepted is trusted without asking it "
        "again (0: ask the store on every request). A key revoked through another process on "
        "the same PostgreSQL answers 401 once its NOTIFY arrives, and the cache is unused "
        "while the listening connection is down.",
    )
    key_upload_bytes_per_hour: int = Field(
        200 * MIB, ge=MIB, description="Upload bytes one tenant key may send an hour."
    )
    tenant_max_plugins: int = Field(100, ge=1, description="Plugins per tenant (default quota).")
    tenant_max_versions: int = Field(
        50, ge=1, description="Versions per plugin of a tenant (default quota)."
    )
    tenant_max_concurrent_runs: int | None = Field(
        None, ge=1, description="Runs of one tenant at once (default quota); unset: no cap."
    )

    # --- CLI client
    url: str = Field("http://127.0.0.1:8700", description="Server URL the CLI talks to.")
    api_key: SecretStr | None = Field(None, description="API key the CLI sends.")

    _check_public_url = field_validator("public_url")(check_public_url)

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _hosts_only(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parts = urlsplit(f"http://{entry}")
            try:
                parts.port  # noqa: B018 -- reading it validates it
            except ValueError as exc:
                raise ValueError(f"webhook allowed host {entry!r}: {exc}") from exc
            if not parts.hostname or parts.path or parts.query or parts.username:
                raise ValueError(
                    f"webhook allowed host {entry!r} is not a host or host:port "
                    "(e.g. hooks.lan, hooks.lan:8443, [fd00::1]:443)"
                )
        return entries

    @field_validator("node_runtimes", mode="before")
    @classmethod
    def _split_runtimes(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("build_ca_bundle", mode="before")
    @classmethod
    def _no_ca_bundle(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in NO_CA_BUNDLE:
            return None  # the operator's explicit opt-out of the system bundle
        return value

    @field_validator("build_network")
    @classmethod
    def _not_host_network(cls, value: str) -> str:
        if value == "host":
            raise ValueError("builds never use the host network: use 'bridge' or a user network")
        return value

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
    def _tenant_share_fits_the_pool(self) -> Settings:
        if self.upload_check_per_tenant > self.upload_check_workers:
            raise ValueError(
                f"EXECUTOR_UPLOAD_CHECK_PER_TENANT={self.upload_check_per_tenant} is above "
                f"EXECUTOR_UPLOAD_CHECK_WORKERS={self.upload_check_workers}: a tenant's share "
                "is part of the pool; lower it or add workers"
            )
        return self

    @model_validator(mode="after")
    def _registry_credentials_together(self) -> Settings:
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

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``data_dir/executor.db`` (SQLite)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'executor.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        """``public_url`` without a trailing slash, or the one derived from host and port."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = WILDCARD_HOSTS.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def resolved_gateway_socket_dir(self) -> Path:
        """The folder holding the gateway socket (the only host folder plugins see)."""
        return (self.gateway_socket_dir or self.data_dir / "run").resolve()

    @property
    def operator_key_file(self) -> Path:
        """Where a generated operator key is kept (mode 0600)."""
        return self.data_dir / "operator_key"
