"""The HTTP client the CLI uses: one method per API call, errors as ``ApiError``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource

__all__ = ["ApiClient", "ApiError", "ServerEvent", "segment"]

REQUEST_TIMEOUT_S = 60.0
# A stream may be silent between records; the server sends a keep-alive every 15 s.
STREAM_READ_TIMEOUT_S = 60.0


def segment(value: str) -> str:
    """``value`` as one URL path segment: plugin names are free text ('My first plugin',
    '50%', 'a?b'), percent-encoded whole (UTF-8)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its type, its id (if any) and its JSON data."""

    event: str
    id: str | None
    data: Any


class ApiError(Exception):
    """The server answered with an error (its JSON ``code`` and ``message``)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", f"http_{status}"))
        self.message = str(body.get("message", body))
        self.body = body
        super().__init__(f"{self.message} [{self.code}, HTTP {status}]")


class ApiClient:
    def __init__(self, url: str, key: str, tenant: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        if tenant is not None:  # the operator key acts on this tenant (tenant keys: 403)
            headers["X-Tenant"] = tenant
        self._http = httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S)

    def _unreachable(self, exc: Exception) -> ApiError:
        return ApiError(
            0,
            {
                "code": "unreachable",
                "message": f"cannot reach the executor at {self._http.base_url}: {exc}; "
                "is 'plugin-executor serve' running? (set EXECUTOR_URL)",
            },
        )

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"message": response.text}
            raise ApiError(
                response.status_code, body if isinstance(body, dict) else {"message": body}
            )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        self._raise_for_status(response)
        return response.json() if response.content else None

    def page(self, path: str, params: dict[str, Any]) -> tuple[list[Any], str | None]:
        """One page of a cursor-paged list and the cursor of the next one."""
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        self._raise_for_status(response)
        return list(response.json()), response.headers.get("X-Next-Cursor")

    def events(
        self, path: str, params: dict[str, Any], last_event_id: str | None = None
    ) -> Iterator[ServerEvent]:
        """Server-Sent Events from ``path`` until the server ends the stream.

        A dropped connection raises ``httpx.TransportError``; call again with the id of the
        last event to resume where it stopped.
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=STREAM_READ_TIMEOUT_S)
        with self._http.stream(
            "GET", path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                self._raise_for_status(response)
            yield from parse_events(response)

    def upload(self, name: str, filename: str, data: bytes, runtime: str | None = None) -> Any:
        form = {"name": name} | ({"runtime": runtime} if runtime is not None else {})
        return self.request("POST", "/v1/plugins", data=form, files={"file": (filename, data)})

    def plugin(self, name: str) -> Any:
        return self.request("GET", f"/v1/plugins/{segment(name)}")

    def build_log(self, name: str, version: int) -> Any:
        return self.request("GET", f"/v1/plugins/{segment(name)}/versions/{version}/build-log")

    def close(self) -> None:
        self._http.close()


def parse_events(response: httpx.Response) -> Iterator[ServerEvent]:
    """The Server-Sent Events of a ``text/event-stream`` response, parsed as the spec says
    (multi-line data, comments, ``retry``) by httpx-sse; each event's data is JSON."""
    for sse in EventSource(response).iter_sse():
        if sse.data:
            yield ServerEvent(sse.event, sse.id or None, json.loads(sse.data))
