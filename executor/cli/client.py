"""The HTTP client the CLI uses: one method per API call, errors as ``ApiError``."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiClient", "ApiError"]

REQUEST_TIMEOUT_S = 60.0


class ApiError(Exception):
    """The server answered with an error (its JSON ``code`` and ``message``)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", f"http_{status}"))
        self.message = str(body.get("message", body))
        self.body = body
        super().__init__(f"{self.message} [{self.code}, HTTP {status}]")


class ApiClient:
    def __init__(self, url: str, key: str) -> None:
        self._http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_TIMEOUT_S
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                0,
                {
                    "code": "unreachable",
                    "message": f"cannot reach the executor at {self._http.base_url}: {exc}; "
                    "is 'plugin-executor serve' running? (set EXECUTOR_URL)",
                },
            ) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"message": response.text}
            raise ApiError(
                response.status_code, body if isinstance(body, dict) else {"message": body}
            )
        return response.json() if response.content else None

    def upload(self, name: str, filename: str, data: bytes) -> Any:
        return self.request(
            "POST", "/v1/plugins", data={"name": name}, files={"file": (filename, data)}
        )

    def plugin(self, name: str) -> Any:
        return self.request("GET", f"/v1/plugins/{name}")

    def build_log(self, name: str, version: int) -> Any:
        return self.request("GET", f"/v1/plugins/{name}/versions/{version}/build-log")

    def close(self) -> None:
        self._http.close()
