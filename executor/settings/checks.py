"""The checks and defaults settings share: URLs, the registry address, the system CA bundle."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "NO_CA_BUNDLE",
    "PROJECT_PLACEHOLDER",
    "REGISTRY_ADDRESS",
    "WILDCARD_HOSTS",
    "check_platform_url",
    "check_public_url",
    "system_ca_bundle",
]

# An OCI registry as the engine names it: host[:port], then optional path components.
REGISTRY_ADDRESS = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*")
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
# A wildcard listen address is no address to reach: the loopback of its family is.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def system_ca_bundle() -> Path | None:
    """The host's CA bundle, if it has one at a usual place (a proxy that inspects TLS is
    trusted there; pip's own bundle does not know it)."""
    return next((path for path in SYSTEM_CA_BUNDLES if path.is_file()), None)


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
