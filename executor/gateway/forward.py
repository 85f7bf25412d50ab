"""The gateway's call to the platform: headers rewritten, body and response capped.

Calls on keep-alive connections made on the gateway's event loop
(``executor.gateway.upstream``): a slow platform holds only the calls waiting for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from executor.gateway.policy import Target
from executor.gateway.upstream import Connections, TooLarge
from executor.settings import Settings

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_UPSTREAM_CALLS",
    "Forwarder",
    "Incoming",
    "Reply",
    "error_reply",
    "idempotency_key",
]

# Calls to the platform at once (threads, and connections of the client's pool); more wait.
MAX_UPSTREAM_CALLS = 100

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never sent upstream: the run token, anything that would let a plugin pose as someone or
# somewhere else, and headers the gateway sets itself.
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "accept-encoding",
    "expect",
    "idempotency-key",  # the gateway's own: a plugin must not choose which call it repeats
}
KEPT_RESPONSE_HEADERS = frozenset(
    {"content-type", "retry-after", "x-request-id", "etag", "last-modified", "cache-control"}
)
INVOCATION_HEADER = "X-Plugin-Invocation"
# "<invocation id>:<n>" on the n-th call (from 1) of an attempt: the same on a re-run that
# makes its calls in the same order, never the same for two invocations (docs/gateway.md).
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass
class Reply:
    """What the gateway answers; ``close`` ends the connection after it."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    close: bool = False


@dataclass(frozen=True)
class Incoming:
    """One plugin request: method, request target as sent, headers, declared body size."""

    method: str
    target: str
    headers: httpx.Headers
    length: int


def error_reply(
    status: int,
    code: str,
    message: str,
    *,
    close: bool = False,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    """A JSON error ``{"code", "message"}`` like the executor API's own."""
    body = json.dumps({"code": code, "message": message}).encode()
    all_headers = [("Content-Type", "application/json"), *(headers or [])]
    return Reply(status, body, all_headers, message, close)


def idempotency_key(invocation_id: str, ordinal: int) -> str:
    """The key of the ``ordinal``-th call (from 1) of any attempt of ``invocation_id``."""
    return f"{invocation_id}:{ordinal}"


class Forwarder:
    """Sends checked calls to the platform, on the gateway's event loop; ``close`` at the
    end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connections = Connections(settings.gateway.upstream_timeout_s, MAX_UPSTREAM_CALLS)

    def close(self) -> None:
        self._connections.close()

    async def forward(
        self,
        incoming: Incoming,
        target: Target,
        path_and_query: str,
        body: bytes | None,
        invocation_id: str,
        ordinal: int,
    ) -> Reply:
        """The platform's answer to the ``ordinal``-th call of an attempt of
        ``invocation_id``, or a 502/504 saying why there is none."""
        headers = self._upstream_headers(incoming.headers, target, invocation_id)
        headers.append((IDEMPOTENCY_HEADER, idempotency_key(invocation_id, ordinal)))
        where = f"{incoming.method} {path_and_query.split('?', 1)[0]}"
        cap = self.settings.gateway.max_response_bytes
        try:
            answer = await self._connections.call(
                target.origin, incoming.method, path_and_query, headers, body, cap
            )
        except TimeoutError:
            return error_reply(
                504,
                "platform_timeout",
                f"the platform API did not answer {where} within "
                f"{self.settings.gateway.upstream_timeout_s:g} s",
            )
        except TooLarge:
            return error_reply(
                502,
                "response_too_large",
                f"the platform's response to {where} is over the cap of {cap} bytes",
            )
        except OSError as exc:
            return error_reply(
                502,
                "platform_unavailable",
                f"the platform API could not be reached for {where} "
                f"({type(exc).__name__}: {exc}); try again later",
            )
        headers_out = [(k, v) for k, v in answer.headers if k in KEPT_RESPONSE_HEADERS]
        return Reply(answer.status, answer.body, headers_out)

    def _upstream_headers(
        self, headers: httpx.Headers, target: Target, invocation_id: str
    ) -> list[tuple[str, str]]:
        kept = [(k, v) for k, v in headers.multi_items() if k not in DROPPED_REQUEST_HEADERS]
        if target.credential is not None:
            kept.append(
                (
                    self.settings.platform.credential_header,
                    self.settings.platform.credential_prefix + target.credential,
                )
            )
        kept.append((INVOCATION_HEADER, invocation_id))
        return kept
