"""The FakeEngine has the real Engine's shape: the same parts, each a kind of the real one,
and what a part does not fake raises the engine error naming it, never reaching a Docker
Engine."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from executor.engine import Engine
from executor.engine.fake import FakeEngine
from executor.errors import SandboxError

NO_CLIENT = "the fake engine has no Docker client: this call is not faked"
NO_REGISTRY = "the fake engine has no registry"


def test_the_fake_engine_has_the_real_engines_parts() -> None:
    real, fake = Engine(), FakeEngine()

    for part in ("containers", "records", "images"):
        assert isinstance(getattr(fake, part), type(getattr(real, part))), part


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda fake: fake.containers.run_to_end(
                "scripted:1",
                command=["true"],
                user="1000",
                host_config={},
                labels={},
                timeout_s=1,
            ),
            NO_CLIENT,
        ),
        (lambda fake: fake.images.tag("scripted:1", "registry/plugin", "1"), NO_CLIENT),
        (lambda fake: fake.images.read_files("scripted:1", ["/etc/hostname"], {}), NO_CLIENT),
        (lambda fake: fake.images.push("registry/plugin", "1", None), NO_REGISTRY),
        (lambda fake: fake.images.pull("registry/plugin", "sha256:0", None), NO_REGISTRY),
        (
            lambda fake: fake.images.build(
                b"", tag="t:1", on_output=print, timeout_s=1, stop=threading.Event()
            ),
            "the fake engine builds nothing: register images with images.add",
        ),
    ],
    ids=["run_to_end", "tag", "read_files", "push", "pull", "build"],
)
def test_what_the_fake_does_not_fake_raises_naming_it(
    call: Callable[[FakeEngine], object], message: str
) -> None:
    fake = FakeEngine()
    fake.images.add("scripted:1")

    with pytest.raises(SandboxError) as caught:
        call(fake)

    assert caught.value.message == message
    assert fake.containers.held == {} and fake.images.exists("scripted:1")
