"""Where a project's plugins may go through the gateway, and which paths are refused.

The plugin sees the platform API at ``http://127.0.0.1:<gateway_port><base path>``: the same
path as on the platform, under the same base. The gateway forwards a request only when its
path lies under the base path of the token's project; the scheme and host always come from
the configured base URL, never from the request.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from executor.settings import PROJECT_PLACEHOLDER, Settings

__all__ = ["PathRefused", "PlatformTargets", "Target", "check_path"]

# Percent-decoding rounds used to see through double-encoding (%252e%252e).
DECODE_ROUNDS = 4


class PathRefused(ValueError):
    """The request target is not a path under the project's platform API base."""


@dataclass(frozen=True)
class Target:
    """The platform API of one project: origin, base path and operator credential."""

    origin: str  # scheme://host[:port]
    base_path: str  # "" or "/a/b", no trailing slash
    credential: str | None = field(default=None, repr=False)

    def url_for(self, path_and_query: str) -> str:
        """The upstream URL of a checked request target."""
        return self.origin + path_and_query


class PlatformTargets:
    """The platform API target of each project, from the settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def for_project(self, project_id: str) -> Target:
        override = self._settings.platform.projects.get(project_id)
        url = override.url if override is not None else self._settings.platform.api_url
        secret = override.credential if override is not None else None
        secret = secret or self._settings.platform.credential
        url = url.replace(PROJECT_PLACEHOLDER, urllib.parse.quote(project_id, safe=""))
        parts = urllib.parse.urlsplit(url)
        return Target(
            origin=f"{parts.scheme}://{parts.netloc}",
            base_path=parts.path.rstrip("/"),
            credential=secret.get_secret_value() if secret is not None else None,
        )

    def plugin_url(self, project_id: str) -> str:
        """The URL the plugin is given as ``api.url``: the in-container forwarder + base path."""
        base_path = self.for_project(project_id).base_path
        return f"http://127.0.0.1:{self._settings.gateway.port}{base_path}"


def _decoded_variants(path: str) -> list[str]:
    variants = [path]
    for _ in range(DECODE_ROUNDS):
        decoded = urllib.parse.unquote(variants[-1])
        if decoded == variants[-1]:
            break
        variants.append(decoded)
    return variants


def _check_segments(path: str) -> None:
    for variant in _decoded_variants(path):
        if "\\" in variant or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in variant):
            raise PathRefused("the path contains a backslash or a control character")
        segments = variant.split("/")[1:]
        if any(segment in (".", "..") for segment in segments):
            raise PathRefused("the path contains a '.' or '..' segment (plain or encoded)")
        if "" in segments[:-1]:
            raise PathRefused("the path contains an empty segment ('//')")


def check_path(request_target: str, base_path: str) -> str:
    """Return ``request_target`` (path and query) if it may be forwarded under ``base_path``.

    Raises :class:`PathRefused` saying why otherwise: a full URL or any target not starting
    with ``/``, a fragment, ``.``/``..`` segments (also percent-encoded, once or more), empty
    segments, backslashes, control characters, or a path outside ``base_path``.
    """
    if not request_target.startswith("/"):
        raise PathRefused("send a path on the platform API, not a full URL")
    if "#" in request_target:
        raise PathRefused("the request target contains a fragment ('#')")
    path = request_target.split("?", 1)[0]
    _check_segments(path)
    if base_path and path != base_path and not path.startswith(base_path + "/"):
        raise PathRefused(f"only paths under {base_path}/ are forwarded for this project")
    return request_target
