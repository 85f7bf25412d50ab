"""Per-key request and upload limits: hit, then recover as time passes."""

from __future__ import annotations

import pytest

from executor.errors import RateLimited
from executor.tenancy.ratelimit import KeyLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_hit_the_rate_then_recover() -> None:
    clock = Clock()
    limiter = KeyLimiter(requests_per_minute=6, upload_bytes_per_hour=3600, clock=clock)
    for _ in range(6):
        limiter.request("k1")
    with pytest.raises(RateLimited) as caught:
        limiter.request("k1")
    assert caught.value.retry_after_s == 10
    assert caught.value.status_code == 429
    limiter.request("k2")  # another key has its own bucket
    clock.now += 10
    limiter.request("k1")
    with pytest.raises(RateLimited):
        limiter.request("k1")


def test_upload_bytes_hit_the_volume_then_recover() -> None:
    clock = Clock()
    limiter = KeyLimiter(requests_per_minute=60, upload_bytes_per_hour=3600, clock=clock)
    limiter.upload("k1", 3000)
    with pytest.raises(RateLimited) as caught:
        limiter.upload("k1", 1000)
    assert caught.value.retry_after_s == 400  # 1 byte a second: 400 bytes short
    assert "retry in 400 s" in caught.value.message
    clock.now += 400
    limiter.upload("k1", 1000)


def test_a_request_takes_the_tokens_it_costs_and_at_most_a_full_bucket() -> None:
    clock = Clock()
    limiter = KeyLimiter(requests_per_minute=6, upload_bytes_per_hour=3600, clock=clock)
    limiter.request("k1", tokens=4)
    limiter.request("k1", tokens=2)
    with pytest.raises(RateLimited) as caught:
        limiter.request("k1", tokens=3)
    assert caught.value.retry_after_s == 30  # 3 tokens at one each 10 s
    assert caught.value.message == (
        "API key k1 sent more than 6 requests a minute (this one costs 3): retry in 30 s"
    )
    clock.now += 30
    limiter.request("k1", tokens=3)
    # Dearer than the whole minute: it takes the full bucket, so it is served once a minute.
    clock.now += 60
    limiter.request("k1", tokens=50)
    with pytest.raises(RateLimited) as caught:
        limiter.request("k1")
    assert caught.value.retry_after_s == 10
