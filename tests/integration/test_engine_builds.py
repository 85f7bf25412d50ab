"""A build on the real engine gives back every connection it opened, however it ended: a
build's response left open holds its socket until garbage collection (one per failed
build, in a service that runs for months)."""

from __future__ import annotations

import io
import tarfile
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from executor.engine import Engine
from executor.engine.builds import BuildTimedOut, StepFailed

MIB = 1024 * 1024


def context(dockerfile: str) -> bytes:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        data = dockerfile.encode()
        member = tarfile.TarInfo("Dockerfile")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return packed.getvalue()


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine().connect()
    yield engine
    engine.close()


@pytest.fixture
def responses(engine: Engine) -> Iterator[list[requests.Response]]:
    """Every response the engine's client receives while the test runs."""
    seen: list[requests.Response] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(response)

    engine.api.hooks["response"].append(record)
    yield seen
    engine.api.hooks["response"].remove(record)


def build(engine: Engine, dockerfile: str, timeout_s: float = 300) -> str:
    return engine.images.build(
        context(dockerfile),
        tag=f"pe-test-build-{uuid.uuid4().hex[:12]}:1",
        on_output=lambda _: None,
        timeout_s=timeout_s,
        stop=threading.Event(),
        container_limits={"memory": 256 * MIB},  # so a failed step looks up OOM events
    )


def open_ones(responses: list[requests.Response]) -> list[str]:
    return [f"{r.request.method} {r.url}" for r in responses if not r.raw.closed]


def test_a_failed_step_gives_back_the_builds_connection(
    engine: Engine, responses: list[requests.Response], runtime_image: str
) -> None:
    with pytest.raises(StepFailed) as failed:
        build(engine, f"FROM {runtime_image}\nRUN exit 3\n")
    assert "returned a non-zero code: 3" in failed.value.error
    urls = [r.url for r in responses]
    assert any("/build?" in url for url in urls), urls
    assert any("/events?" in url for url in urls), urls  # the OOM lookup ran after the step
    assert open_ones(responses) == []


def test_a_build_past_its_wall_time_gives_back_the_builds_connection(
    engine: Engine, responses: list[requests.Response], runtime_image: str
) -> None:
    with pytest.raises(BuildTimedOut):
        build(engine, f"FROM {runtime_image}\nRUN sleep 600\n", timeout_s=2)
    assert any("/build?" in r.url for r in responses)
    assert open_ones(responses) == []
