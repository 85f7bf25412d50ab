"""The reference platform's Idempotency-Key store (examples/labeling_platform/idempotency.py)
on a small ASGI app that counts what it does: bounds, expiry, failures, keys at once."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from examples.labeling_platform.idempotency import IdempotencyKeys


class Counting:
    """Answers ``{"n": <how many times it acted>}``; ``/fail`` answers 503; ``/slow`` waits
    for ``release``."""

    def __init__(self) -> None:
        self.acted = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        self.acted += 1
        n = self.acted
        if scope["path"] == "/slow":
            await self.release.wait()
        status = 503 if scope["path"] == "/fail" else 200
        body = json.dumps({"n": n}).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


def post(middleware: IdempotencyKeys, *calls: tuple[str, str | None]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
            answers = []
            for path, key in calls:
                headers = {"Idempotency-Key": key} if key else {}
                answers.append(await client.post(path, content=b"x", headers=headers))
            return answers

    return asyncio.run(go())


def ns(answers: list[httpx.Response]) -> list[int]:
    return [a.json()["n"] for a in answers]


def test_the_oldest_key_is_forgotten_past_the_cap() -> None:
    app = Counting()
    keys = IdempotencyKeys(app, max_keys=2)
    answers = post(keys, ("/a", "k1"), ("/a", "k2"), ("/a", "k1"), ("/a", "k3"), ("/a", "k1"))
    # k1 is answered from the store until k3 pushes it out; then it acts again.
    assert ns(answers) == [1, 2, 1, 3, 4]
    assert app.acted == 4


def test_a_stored_answer_expires() -> None:
    app = Counting()
    keys = IdempotencyKeys(app, ttl_s=-1)  # every answer is already past its age
    assert ns(post(keys, ("/a", "k1"), ("/a", "k1"))) == [1, 2]


def test_the_bytes_kept_are_bounded() -> None:
    app = Counting()
    keys = IdempotencyKeys(app, max_bytes=len(b'{"n": 1}'), max_answer_bytes=1024)
    assert ns(post(keys, ("/a", "k1"), ("/a", "k2"), ("/a", "k1"))) == [1, 2, 3]
    too_big = IdempotencyKeys(Counting(), max_answer_bytes=2)
    assert ns(post(too_big, ("/a", "k1"), ("/a", "k1"))) == [1, 2]


def test_a_failure_is_not_stored_and_no_key_acts_every_time() -> None:
    app = Counting()
    keys = IdempotencyKeys(app)
    answers = post(keys, ("/fail", "k1"), ("/fail", "k1"), ("/a", None), ("/a", None))
    assert [a.status_code for a in answers] == [503, 503, 200, 200]
    assert ns(answers) == [1, 2, 3, 4]


@pytest.mark.parametrize("same_key", [True, False])
def test_the_same_key_at_once_acts_once(same_key: bool) -> None:
    app = Counting()
    keys = IdempotencyKeys(app)
    counter = itertools.count()

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=keys)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:

            async def one() -> int:
                key = "k" if same_key else f"k{next(counter)}"
                answer = await client.post("/slow", content=b"x", headers={"Idempotency-Key": key})
                return int(answer.json()["n"])

            calls = [asyncio.create_task(one()) for _ in range(3)]
            while app.acted < (1 if same_key else 3):
                await asyncio.sleep(0)
            app.release.set()
            return sorted(await asyncio.gather(*calls))

    assert asyncio.run(go()) == ([1, 1, 1] if same_key else [1, 2, 3])
    assert app.acted == (1 if same_key else 3)
