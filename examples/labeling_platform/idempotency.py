"""``Idempotency-Key``: a call made again with a key answered before gets the stored answer
and changes nothing (docs/gateway.md, "Idempotency keys").

The executor's gateway sends ``<invocation id>:<n>`` on the n-th call of each attempt of a
run, so the calls of an attempt that re-runs one a lost node was running meet the first
attempt's answers instead of acting twice. Keys are kept per caller (the credential that
sent them) in memory, bounded in count, bytes and age: a key forgotten (evicted, expired,
or the platform restarted) is acted on again, as without a key.

Every method is answered from the store: a re-run then reads what the first attempt read
and takes the same path through its handler, so its later calls match too. A key sent
again with another method, path or body is refused (422 ``idempotency_key_reused``)
rather than answered with the wrong call's result. A 5xx answer is not stored: the next
try acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["KEY_HEADER", "IdempotencyKeys"]

KEY_HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotent-replayed"
MAX_KEY_CHARS = 255
# What identifies the caller: a key is never shared between two credentials.
_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


@dataclass(frozen=True)
class _Stored:
    fingerprint: str  # method, path and query, body digest
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    expires_at: float  # time.monotonic()


class _Fingerprint:
    """The request's body digest, fed as the body is read (never held whole)."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._head = f"{scope['method']} {scope['raw_path'].decode('latin-1')}?"
        self._head += scope["query_string"].decode("latin-1")
        self._digest = hashlib.sha256()
        self._receive = receive
        self._done = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._digest.update(message.get("body", b""))
            self._done = not message.get("more_body", False)
        return message

    async def value(self) -> str:
        """The fingerprint, the rest of the body read (and dropped) first."""
        while not self._done:
            if (await self.receive())["type"] != "http.request":
                break
        return f"{self._head} {self._digest.hexdigest()}"


class IdempotencyKeys:
    """ASGI middleware keeping the answers to keyed requests."""

    def __init__(
        self,
        app: ASGIApp,
        max_keys: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_answer_bytes: int = 1024 * 1024,
        ttl_s: float = 24 * 3600,
    ) -> None:
        self.app = app
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.max_answer_bytes = max_answer_bytes  # a larger answer is not stored
        self.ttl_s = ttl_s
        self._answers: OrderedDict[str, _Stored] = OrderedDict()
        self._bytes = 0
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _key_of(scope) if scope["type"] == "http" else None
        if key is None:
            await self.app(scope, receive, send)
            return
        fingerprint = _Fingerprint(scope, receive)
        async with self._only_one(key):  # the same key at once: the second waits
            stored = self._lookup(key)
            if stored is None:
                await self._act(key, scope, fingerprint, send)
            elif stored.fingerprint != await fingerprint.value():
                await _send_reused(send)
            else:
                await _send_stored(send, stored)

    async def _act(self, key: str, scope: Scope, fingerprint: _Fingerprint, send: Send) -> None:
        """Run the request, relaying its answer as it goes; store it when complete."""
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body: list[bytes] = []
        size = 0

        async def keep(message: Message) -> None:
            nonlocal status, headers, size
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size <= self.max_answer_bytes:
                    body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, fingerprint.receive, keep)
        if 0 < status < 500 and size <= self.max_answer_bytes:
            answer = b"".join(body)
            expires = time.monotonic() + self.ttl_s
            self._store(key, _Stored(await fingerprint.value(), status, headers, answer, expires))

    def _lookup(self, key: str) -> _Stored | None:
        stored = self._answers.get(key)
        if stored is not None and stored.expires_at <= time.monotonic():
            self._forget(key)
            return None
        return stored

    def _store(self, key: str, stored: _Stored) -> None:
        self._answers[key] = stored
        self._bytes += len(stored.body)
        while self._answers and (
            len(self._answers) > self.max_keys or self._bytes > self.max_bytes
        ):
            self._forget(next(iter(self._answers)))  # the oldest first

    def _forget(self, key: str) -> None:
        self._bytes -= len(self._answers.pop(key).body)

    @contextlib.asynccontextmanager
    async def _only_one(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _key_of(scope: Scope) -> str | None:
    """The request's key, scoped to its caller's credential; None without one (or with
    one too long to be a key)."""
    headers = dict(scope["headers"])
    key = headers.get(KEY_HEADER)
    if key is None or len(key) > MAX_KEY_CHARS:
        return None
    caller = hashlib.sha256(b"\n".join(headers.get(h, b"") for h in _CREDENTIAL_HEADERS))
    return f"{caller.hexdigest()} {key.decode('latin-1')}"


async def _send_stored(send: Send, stored: _Stored) -> None:
    headers = [*stored.headers, (REPLAYED_HEADER, b"true")]
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


async def _send_reused(send: Send) -> None:
    body = json.dumps(
        {
            "code": "idempotency_key_reused",
            "message": "this Idempotency-Key was sent before with another method, path or "
            "body: send a new key for a new call",
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})
