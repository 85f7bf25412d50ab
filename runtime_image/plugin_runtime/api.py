"""``self.api``: a small JSON HTTP client for the platform API (through the gateway).

Standard library only (urllib, in :mod:`plugin_runtime.transport`, imported on the first
call). The token is sent as ``Authorization: Bearer <token>`` and ``X-API-Key: <token>`` and
is kept out of ``repr()``, error messages and logs.
"""

from __future__ import annotations

import json as _json

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from typing import Any, NoReturn

DEFAULT_TIMEOUT = 30.0
BODY_EXCERPT_CHARS = 500
_PATH_SAFE = "/?&=%:@!$'()*+,;-._~"


class ApiError(Exception):
    """A platform API call failed.

    ``str(error)`` names the method, the path, the HTTP status (when there was a response)
    and the first 500 characters of the response body. Attributes: ``method``, ``path``,
    ``status`` (``None`` when no response arrived) and ``body`` (the excerpt).
    """

    def __init__(self, message: str, *, method: str, path: str, status: int | None, body: str):
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.body = body


def preload() -> None:
    """Import the transport now: a container started ahead of its event does it while it
    waits, so the handler's first call pays nothing more than in a cold start."""
    from plugin_runtime import transport  # noqa: F401 (urllib.request brings urllib.parse)


class RequestVerbs:
    """``get`` / ``post`` / ``put`` / ``patch`` / ``delete`` as ``request(METHOD, ...)``."""

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    def get(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """``GET <base_url>/<path>?<params>``; returns the parsed JSON body."""
        return self.request("GET", path, json=json, params=params)

    def post(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """``POST`` with ``json`` as the request body; returns the parsed JSON body."""
        return self.request("POST", path, json=json, params=params)

    def put(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """``PUT`` with ``json`` as the request body; returns the parsed JSON body."""
        return self.request("PUT", path, json=json, params=params)

    def patch(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """``PATCH`` with ``json`` as the request body; returns the parsed JSON body."""
        return self.request("PATCH", path, json=json, params=params)

    def delete(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """``DELETE``; returns the parsed JSON body (``None`` when empty)."""
        return self.request("DELETE", path, json=json, params=params)


class ApiClient(RequestVerbs):
    """JSON client rooted at ``base_url``; every path is joined *under* it.

    ``api.get("projects/p1")`` and ``api.get("/projects/p1")`` both request
    ``<base_url>/projects/p1``. Methods return the parsed JSON body, or ``None`` for an
    empty body, and raise :class:`ApiError` on a non-2xx status, a connection error, a
    timeout (``timeout`` seconds, default 30) or a non-JSON body. Redirects and proxies are
    never followed.
    """

    def __init__(self, base_url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.__token = token

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r})"

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        """The full URL for ``path`` (relative to ``base_url``) and query ``params``."""
        import urllib.parse  # on the first call, like the transport (see preload)

        parts = urllib.parse.urlsplit(path)
        if parts.scheme or parts.netloc:
            raise ValueError("ApiClient paths are relative to the API base URL, not full URLs")
        url = f"{self.base_url}/{urllib.parse.quote(path.lstrip('/'), safe=_PATH_SAFE)}"
        if params:
            query = urllib.parse.urlencode(params, doseq=True)
            url += ("&" if "?" in url else "?") + query
        return url

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Send one request; see the class docstring for results and errors."""
        from plugin_runtime.transport import Failure, exchange  # on first use: see preload

        method = method.upper()
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {self.__token}",
            "X-API-Key": self.__token,
            "User-Agent": "plugin-runtime",
        }
        data = None
        if json is not None:
            data = _json.dumps(json).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            status, body = exchange(method, self.url(path, params), data, headers, self.timeout)
        except Failure as exc:
            self._fail(method, path, exc.status, exc.body, exc.reason)
        if not body.strip():
            return None
        try:
            return _json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace")
            self._fail(method, path, status, text, "response is not JSON")

    def _fail(
        self, method: str, path: str, status: int | None, body: str, reason: str = ""
    ) -> NoReturn:
        excerpt = self._redact(body[:BODY_EXCERPT_CHARS])
        what = f"HTTP {status}" if status is not None else "no response"
        message = f"{method} {path} failed: {what}"
        if reason:
            message += f" ({self._redact(reason)})"
        if excerpt:
            message += f": {excerpt}"
        raise ApiError(
            self._redact(message),
            method=method,
            path=self._redact(path),
            status=status,
            body=excerpt,
        ) from None

    def _redact(self, text: str) -> str:
        return text.replace(self.__token, "***") if self.__token else text
