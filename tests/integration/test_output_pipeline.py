"""Plugin output from a real container to GET /v1/logs: long lines in parts that keep
their level, invalid Unicode replaced; and the engine's copy of the output read back by an
executor adopting a container after a restart (``Sandbox.watch``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.utils.socket import frames_iter

from executor.engine import INVOCATION_LABEL, Engine, close_attached
from executor.run.output import OutputCollector, OutputLine
from executor.run.sandbox import Sandbox
from executor.sandbox.profile import container_config, engine_log_file_bytes
from executor.settings import SandboxProfile
from tests.conftest import RunningServer


def messages(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(level, stream, text) per message: each record joined to the one it continues."""
    found: list[tuple[str, str, str]] = []
    message_of: dict[int, int] = {}  # seq -> index in found
    for record in records:
        key = (record["log_type"], record["stream"])
        if record["continues"] is None:
            message_of[record["seq"]] = len(found)
            found.append((*key, record["content"]))
            continue
        index = message_of[record["continues"]]
        assert found[index][:2] == key, f"part {record['seq']} changed level or stream"
        found[index] = (*key, found[index][2] + record["content"])
        message_of[record["seq"]] = index
    return found


def test_long_lines_and_lone_surrogates_are_stored_whole_with_their_level(
    server: RunningServer,
) -> None:
    server.push("long_lines")
    server.activate("long_lines", "long-lines")
    run = server.run_event(type="onSubmit", project_id="long-lines", asset_id="a1", label={})
    assert run["status"] == "succeeded", run
    records = [r for r in server.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"]

    assert not any(r["content"].startswith('{"') for r in records), "a protocol fragment"
    assert all(len(r["content"].encode()) <= 16 * 1024 for r in records)
    assert sorted(messages(records)) == sorted(
        [
            ("INFO", "stdout", "X" * 70000),
            ("INFO", "stdout", "漢" * 25000),
            ("WARNING", "logger", "Y" * 70000),
            ("INFO", "stdout", "\ufffd"),
            ("INFO", "stdout", "a\ufffdb"),
            ("ERROR", "stderr", "字" * 25000),
        ]
    )
    assert run["truncated"] is False and run["log_bytes"] > 4 * 70000


# --- reading back the engine's copy (what an adopting executor does) ----------------------

# Half its lines, then (once the first reader sent a line on stdin) the other half.
WRITER = """
import os, sys, time
def half(rounds):
    for n in rounds:
        os.write(1, f"out {n}\\n".encode())
        os.write(2, f"err {n}\\n".encode())
half(range(100))
os.write(1, b"a partial line, ")
sys.stdin.readline()
os.write(1, b"ended later\\n")
half(range(100, 200))
time.sleep(float(sys.argv[1]))
"""


@pytest.fixture
def engine(docker_client: docker.DockerClient) -> Iterator[Engine]:
    made = Engine(docker_client)
    yield made
    found = docker_client.api.containers(all=True, filters={"label": INVOCATION_LABEL})
    for container in found:
        if container["Labels"][INVOCATION_LABEL].startswith("output-pipeline-"):
            made.containers.remove(container["Id"])


def create(engine: Engine, image: str, profile: SandboxProfile, script: str, *args: str) -> str:
    """A container with the sandbox's host config (log driver included) running ``script``."""
    created = engine.api.create_container(
        image,
        entrypoint=["python3", "-c", script, *args],
        stdin_open=True,
        user=profile.user,
        labels=engine.labels(**{INVOCATION_LABEL: f"output-pipeline-{time.monotonic_ns()}"}),
        host_config=engine.api.create_host_config(**container_config(profile)),
        network_disabled=True,
    )
    return str(created["Id"])


def read_first_half(engine: Engine, container_id: str) -> tuple[list[OutputLine], dict[int, int]]:
    """The first executor: attached, it stores lines until it has the first half, then
    lets the container go on and dies (its attach connection closes)."""
    sock = engine.api.attach_socket(
        container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
    )
    engine.api.start(container_id)
    collector = OutputCollector(1024 * 1024)
    stored: list[OutputLine] = []
    # types-docker leaves frames_iter unannotated.
    for stream_id, data in frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
        stored += collector.feed(stream_id, data)
        if {"out 99", "err 99"} <= {line.content for line in stored}:
            break
    raw: socket.socket = sock._sock
    raw.sendall(b"go\n")
    close_attached(sock)
    return stored, collector.read_bytes


@pytest.mark.parametrize("exited", [False, True], ids=["running", "exited"])
def test_an_adopting_executor_stores_every_line_exactly_once(
    engine: Engine, runtime_image: str, exited: bool
) -> None:
    profile = SandboxProfile()
    container_id = create(engine, runtime_image, profile, WRITER, "0" if exited else "2")
    stored, read_bytes = read_first_half(engine, container_id)
    if exited:
        assert engine.api.wait(container_id, timeout=60)["StatusCode"] == 0

    replay = OutputCollector(profile.log_cap_bytes, resume_at=read_bytes)
    replayed: list[OutputLine] = []

    def sink(stream_id: int, data: bytes) -> bool:
        replayed.extend(replay.feed(stream_id, data))
        return True

    outcome = Sandbox(engine, profile).watch(container_id, "adopted", 60, sink, running=not exited)
    replayed += replay.close()

    assert outcome.status == "succeeded" and not outcome.output_lost, outcome
    lines = stored + replayed
    assert [x.content for x in lines if x.stream == "stderr"] == [f"err {n}" for n in range(200)]
    assert [x.content for x in lines if x.stream == "stdout"] == [
        *(f"out {n}" for n in range(100)),
        "a partial line, ended later",
        *(f"out {n}" for n in range(100, 200)),
    ]
    assert engine.api.containers(all=True, filters={"id": container_id}) == []


FLOOD = """
import os, sys, time
for _ in range(int(sys.argv[1])):
    os.write(1, b"x" * 1023 + b"\\n")
time.sleep(300)
"""


def test_a_copy_past_its_first_file_is_not_replayed_and_the_run_stops(
    engine: Engine, runtime_image: str
) -> None:
    """While no executor read it, the plugin wrote past the log cap and the engine started a
    new file: the start of the copy may be gone, so nothing is replayed; the run ends as
    log_limit with its output marked lost, killed rather than left to its wall time."""
    profile = SandboxProfile(log_cap_bytes=1024, engine_log_max_bytes=2 * (1024 + 65536))
    rotated = engine_log_file_bytes(profile)
    container_id = create(engine, runtime_image, profile, FLOOD, str(3 * rotated // 1024))
    engine.api.start(container_id)
    deadline = time.monotonic() + 120
    while not engine.records.output_size_reaches(container_id, rotated):
        assert time.monotonic() < deadline, "the flood did not reach the engine's copy"
        time.sleep(0.2)
    fed: list[bytes] = []

    def keep_reading(_: int, data: bytes) -> bool:
        fed.append(data)
        return True

    outcome = Sandbox(engine, profile).watch(
        container_id, "adopted", 600, keep_reading, running=True
    )

    assert (outcome.status, outcome.output_lost) == ("failed", True), outcome
    assert outcome.error == "log_limit: more than 1024 bytes of output; run stopped"
    assert fed == []
    assert engine.api.containers(all=True, filters={"id": container_id}) == []
