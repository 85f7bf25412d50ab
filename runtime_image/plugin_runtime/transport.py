"""The HTTP exchange behind ``self.api`` (urllib), imported on the API's first call.

``http.client``, ``urllib.request``, ``email`` and ``ssl`` come with it: about half of what
the runtime imports, which a cold start would wait for before its handler, and which a
plugin that never calls ``self.api`` does not need. A warm container imports it while it
waits for its event (:func:`plugin_runtime.api.preload`).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any


class Failure(Exception):
    """The exchange failed: ``status`` None when no response came, ``body`` the response's
    text, ``reason`` what went wrong when there was no response."""

    def __init__(self, status: int | None, body: str, reason: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.body = body
        self.reason = reason


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would send the token to another URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxy from the environment, no redirect followed.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def exchange(
    method: str, url: str, data: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    """Send one request; its status and body on any 2xx, else :class:`Failure`."""
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read().decode("utf-8", "replace")
        raise Failure(exc.code, text) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise Failure(None, "", f"{type(exc).__name__}: {reason}") from None
