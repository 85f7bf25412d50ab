"""The FakeEngine keeps the Docker Engine's contract: the same scripted plugins, run by the
same sandbox on the real engine and on the fake, end the same way (status, exit code,
whether it was infrastructure, output), and the same start failures raise the same errors.

The real plugins are one tiny image: the runtime image whose ``python3`` (what the
sandbox's init command runs) is a shell script acting out the scenario named on its stdin.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import pytest

from executor.engine import Engine, ImageMissing
from executor.engine.fake import FakeEngine, Script, scripted
from executor.errors import SandboxError
from executor.run.sandbox import Sandbox
from executor.settings import SandboxProfile
from executor.statuses import InvocationStatus

IMAGE = "plugin-executor-test/scripted:latest"
PROFILE = SandboxProfile(timeout_s=120)
DEADLINE_S = 3.0
# The scripted plugin: reads its "envelope" (a scenario name), then acts it out.
ACT = r"""#!/bin/sh
read -r scenario
case "$scenario" in
  ok) echo hello; exit 0 ;;
  fail) echo boom; exit 1 ;;
  self137) echo bye; exit 137 ;;
  *) sleep 300 ;;
esac
"""


@pytest.fixture(scope="module")
def scripted_image(docker_client: docker.DockerClient, runtime_image: str) -> Iterator[str]:
    script = ACT.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "'\"'\"'")
    dockerfile = (
        f"FROM {runtime_image}\nUSER root\n"
        "RUN for d in $(echo $PATH | tr : ' '); do rm -f $d/python3; done; "
        f"printf '{script}' > /usr/local/bin/python3 && chmod 755 /usr/local/bin/python3\n"
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=IMAGE, rm=True)
    yield IMAGE
    docker_client.images.remove(IMAGE, force=True)


@dataclass(frozen=True)
class Ended:
    """What the executor concludes of a run: comparable between engines."""

    status: InvocationStatus
    exit_code: int | None
    infrastructure: bool
    output: bytes


def _run(
    sandbox: Sandbox,
    scenario: str,
    before_hand_off: Callable[[str], None] = lambda container_id: None,
) -> Ended:
    output: list[bytes] = []

    def sink(stream_id: int, data: bytes) -> bool:
        output.append(data)
        return True

    started = sandbox.start(IMAGE, PROFILE, invocation_id=f"contract-{uuid.uuid4()}")
    before_hand_off(started.container_id)
    timeout = DEADLINE_S if scenario == "hang" else None
    outcome = sandbox.hand_off(started, f"{scenario}\n".encode(), "contract", sink, timeout)
    return Ended(outcome.status, outcome.exit_code, outcome.infrastructure, b"".join(output))


FAKES = {
    "ok": scripted("hello"),
    "fail": scripted("boom", exit_code=1),
    "self137": scripted("bye", exit_code=137),
    "hang": Script(hangs=True),
}
EXPECTED = {
    "ok": Ended(InvocationStatus.SUCCEEDED, 0, False, b"hello\n"),
    "fail": Ended(InvocationStatus.FAILED, 1, False, b"boom\n"),
    "self137": Ended(InvocationStatus.FAILED, 137, False, b"bye\n"),
    "hang": Ended(InvocationStatus.TIMED_OUT, 137, False, b""),
}


def _fake(scenario: str) -> FakeEngine:
    fake = FakeEngine()
    fake.images.add(IMAGE, FAKES[scenario])
    return fake


@pytest.mark.parametrize("scenario", sorted(FAKES))
def test_a_scripted_plugin_ends_the_same_on_both_engines(
    docker_client: docker.DockerClient, scripted_image: str, scenario: str
) -> None:
    real = _run(Sandbox(Engine(docker_client), PROFILE), scenario)
    fake = _run(Sandbox(_fake(scenario), PROFILE), scenario)

    assert real == fake == EXPECTED[scenario]


def test_a_docker_kill_from_outside_is_infrastructure_on_both_engines(
    docker_client: docker.DockerClient, scripted_image: str
) -> None:
    real = _run(
        Sandbox(Engine(docker_client), PROFILE),
        "wait",
        lambda container_id: docker_client.api.kill(container_id, signal="SIGKILL"),
    )
    engine = _fake("hang")
    fake = _run(Sandbox(engine, PROFILE), "wait", engine.containers.kill_from_outside)

    assert real == fake == Ended(InvocationStatus.CRASHED, 137, True, b"")


def test_start_failures_raise_the_same_errors_on_both_engines(
    docker_client: docker.DockerClient, scripted_image: str
) -> None:
    real, fake = Engine(docker_client), _fake("ok")
    fake.fail("containers.create")
    # An engine that refuses the create (here: a runtime it does not have) and a fake told
    # to fail it: an engine error, which the runner retries as infrastructure.
    unknown = PROFILE.model_copy(update={"oci_runtime": "no-such-runtime"})
    for sandbox, profile in ((Sandbox(real, PROFILE), unknown), (Sandbox(fake, PROFILE), PROFILE)):
        with pytest.raises(SandboxError) as caught:
            sandbox.start(IMAGE, profile, invocation_id="contract-create")
        assert not isinstance(caught.value, ImageMissing)
        assert caught.value.message.startswith(
            "Docker Engine error while creating the plugin container: "
        )
    # An image the engine does not have: not retried.
    for engine in (real, _fake("ok")):
        with pytest.raises(ImageMissing) as missing:
            Sandbox(engine, PROFILE).start("plugin-executor-test/none:1", PROFILE)
        assert missing.value.message == (
            "image plugin-executor-test/none:1 is missing: rebuild the plugin version"
        )
