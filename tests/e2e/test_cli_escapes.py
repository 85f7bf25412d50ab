"""The CLI as a subprocess shows what a plugin wrote as inert text: no ESC, CR, BEL or bidi
control reaches the terminal, and a record's later lines are indented under its content,
in push, build-log, logs, logs --follow and the local run. JSON output keeps the text."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.conftest import RunningServer
from tests.e2e.painter import BUILD_PAINT, HTML, PAINT, PRINTED, TWO_LINES, write_painter
from tests.e2e.test_cli import cli
from tests.e2e.test_cli_builds import local

RAW_CONTROLS = ("\x1b", "\r", "\x07", "\u202e")
SHOWN_PAINT = "\\x1b[2K\\rSYSTEM run ended: succeeded"
SHOWN_BUILD_PAINT = "\\x1b[2K\\x1b[1ASYSTEM build ended: ACTIVE"
RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (?P<level>\S+) +(?P<content>.*)$")
INDENT = " " * len("2026-11-27T10:00:00.123 WARNING  ")


def assert_inert(text: str) -> None:
    found = [repr(c) for c in RAW_CONTROLS if c in text]
    assert not found, f"raw {', '.join(found)} in the output:\n{text!r}"


def assert_painted_records_are_inert(stdout: str) -> None:
    """The plugin's four records, as the text output of ``logs`` must show them."""
    assert_inert(stdout)
    shown = []
    for line in stdout.splitlines():
        record = RECORD.match(line)
        shown.append((record["level"], record["content"]) if record else ("", line))
    assert shown == [
        ("INFO", "ok"),
        ("INFO", SHOWN_PAINT),
        ("WARNING", "two lines"),
        ("", INDENT + SHOWN_PAINT + "\\x07\\u202egnp.exe"),  # the later line, indented
        ("INFO", HTML),
        ("SYSTEM", shown[-1][1]),
    ]
    assert re.fullmatch(r"run ended succeeded in \d+ ms", shown[-1][1])


@dataclass(frozen=True)
class PaintedRun:
    pushed: subprocess.CompletedProcess[str]
    run_id: str


@pytest.fixture(scope="module")
def painted(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> PaintedRun:
    """The painter plugin pushed with the CLI, activated, and run once."""
    folder = write_painter(tmp_path_factory.mktemp("cli-escapes") / "painter")
    pushed = cli(server, "push", str(folder))
    server.activate("painter", "paint-proj")
    run = server.run_event(type="onSubmit", project_id="paint-proj", asset_id="a-1", label={})
    assert run["status"] == "succeeded", run
    return PaintedRun(pushed, str(run["id"]))


def test_push_streams_the_build_output_inert(painted: PaintedRun) -> None:
    assert_inert(painted.pushed.stdout + painted.pushed.stderr)
    assert SHOWN_BUILD_PAINT in painted.pushed.stdout  # the build's warning, quoted, escaped


def test_logs_show_plugin_text_inert(server: RunningServer, painted: PaintedRun) -> None:
    done = cli(server, "logs", "painter", "--project", "paint-proj")
    assert_painted_records_are_inert(done.stdout)


def test_logs_follow_shows_plugin_text_inert(server: RunningServer, painted: PaintedRun) -> None:
    done = cli(server, "logs", "painter", "-p", "paint-proj", "--run", painted.run_id, "--follow")
    assert_painted_records_are_inert(done.stdout)


def test_logs_json_keeps_the_text_as_written(server: RunningServer, painted: PaintedRun) -> None:
    listed = json.loads(cli(server, "logs", "painter", "-p", "paint-proj", "--json").stdout)
    contents = [r["content"] for r in listed if r["log_type"] != "SYSTEM"]
    assert contents == [*PRINTED.split("\n"), TWO_LINES, HTML]


def test_build_log_shows_the_build_output_inert(server: RunningServer, painted: PaintedRun) -> None:
    done = cli(server, "build-log", "painter")
    assert_inert(done.stdout)
    assert SHOWN_BUILD_PAINT in done.stdout
    raw = server.api.get("/v1/plugins/painter/versions/1/build-log").json()["log"]
    assert BUILD_PAINT in raw  # the API keeps what the build wrote


@pytest.fixture
def painter_image(docker_client: docker.DockerClient) -> Iterator[None]:
    yield
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove("plugin-executor/p-local-painter:v0", force=True)


def test_local_run_shows_plugin_text_inert(
    tmp_path: Path, runtime_image: str, painter_image: None
) -> None:
    folder = write_painter(tmp_path / "painter")
    event = tmp_path / "event.json"
    event.write_text(local("sample-event", "onSubmit").stdout)
    done = local("run", str(folder), "--event", str(event))
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout + done.stderr)
    assert SHOWN_BUILD_PAINT in done.stderr
    assert done.stdout.splitlines() == [
        "INFO     ok",
        f"INFO     {SHOWN_PAINT}",
        "WARNING  two lines",
        " " * 9 + SHOWN_PAINT + "\\x07\\u202egnp.exe",
        f"INFO     {HTML}",
    ]
    assert PAINT not in done.stdout
