"""Per-key abuse limits: requests and upload bytes, as token buckets.

On PostgreSQL, where several API processes may serve one store, the buckets live in the
store (``StoreLimiter``, one statement a take: ``executor.store.buckets``), so a key gets
its limit once whichever process it reaches. On SQLite the one process keeps them in
memory (``KeyLimiter``): no store write on the request path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from executor.errors import RateLimited
from executor.store import buckets
from executor.store.db import Database

__all__ = ["KeyLimiter", "Limiter", "StoreLimiter", "TokenBucket"]

SECONDS_PER_MINUTE = 60.0
SECONDS_PER_HOUR = 3600.0


@dataclass
class TokenBucket:
    """Holds up to ``capacity`` tokens, refilled at ``rate`` per second."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` tokens: 0 if done, else the seconds until they would be there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if amount <= self.tokens:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate


class Limiter:
    """Request rate and upload volume per API key; RateLimited (429) past either.

    Subclasses keep the buckets (``_take``); ``in_store`` says whether a take queries the
    store (then it belongs in a thread, not on the event loop)."""

    in_store = False

    def __init__(self, requests_per_minute: int, upload_bytes_per_hour: int) -> None:
        self._requests = (float(requests_per_minute), requests_per_minute / SECONDS_PER_MINUTE)
        self._uploads = (float(upload_bytes_per_hour), upload_bytes_per_hour / SECONDS_PER_HOUR)

    def _take(self, kind: str, key_id: str, amount: float, limits: tuple[float, float]) -> float:
        """Take ``amount`` from the key's ``kind`` bucket of (capacity, rate per second)
        ``limits``: 0 if done, else the seconds until the tokens would be there."""
        raise NotImplementedError

    def request(self, key_id: str, tokens: int = 1) -> None:
        """Count a request of ``key_id`` that costs ``tokens`` (a GraphQL document costs by
        what it asks; see executor/api/graphql/cost.py). A request dearer than a minute's
        rate takes the whole minute: it can still be served once the bucket is full."""
        capacity = self._requests[0]
        wait = self._take("requests", key_id, min(float(tokens), capacity), self._requests)
        if wait:
            costing = "" if tokens == 1 else f" (this one costs {tokens})"
            raise RateLimited(
                f"API key {key_id} sent more than {int(capacity)} requests a minute{costing}: "
                f"retry in {math.ceil(wait)} s",
                retry_after_s=math.ceil(wait),
            )

    def upload(self, key_id: str, size: int) -> None:
        """Count ``size`` uploaded bytes of ``key_id``."""
        wait = self._take("uploads", key_id, size, self._uploads)
        if wait:
            raise RateLimited(
                f"API key {key_id} uploaded more than {int(self._uploads[0])} bytes in the last "
                f"hour: retry in {math.ceil(wait)} s",
                retry_after_s=math.ceil(wait),
            )


class KeyLimiter(Limiter):
    """Buckets in this process's memory (one process per store: SQLite)."""

    def __init__(
        self,
        requests_per_minute: int,
        upload_bytes_per_hour: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(requests_per_minute, upload_bytes_per_hour)
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def _take(self, kind: str, key_id: str, amount: float, limits: tuple[float, float]) -> float:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((kind, key_id))
            if bucket is None:
                bucket = TokenBucket(limits[0], limits[1], limits[0], now)
                self._buckets[(kind, key_id)] = bucket
            return bucket.take(amount, now)


class StoreLimiter(Limiter):
    """Buckets in the store, shared by every process on it: one statement a take."""

    in_store = True

    def __init__(self, db: Database, requests_per_minute: int, upload_bytes_per_hour: int) -> None:
        super().__init__(requests_per_minute, upload_bytes_per_hour)
        self._db = db

    def _take(self, kind: str, key_id: str, amount: float, limits: tuple[float, float]) -> float:
        capacity, rate = limits
        with self._db.autocommit_connection() as connection:
            taken = buckets.take(connection, key_id, kind, amount, capacity, rate)
        return 0.0 if taken.granted else (amount - taken.tokens) / rate
