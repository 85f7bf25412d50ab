"""How the runtime reads its envelope and builds the handler before it.

The executor writes the envelope as one line and the runtime answers that line at once: a
warm container does not wait for the end of stdin, which the engine relays milliseconds
later. An envelope over several lines (written by hand) is still read to the end of stdin.
The handler's constructor form is decided once the class is loaded, before the envelope.
Run as subprocesses on the host Python, like tests/unit/test_runtime.py.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from plugin_runtime.dispatch import construction

from executor.schemas.envelope import ApiInfo, Envelope, EnvelopeEvent
from tests.unit.test_runtime import (
    DISPATCH_PLUGIN,
    LABEL,
    RUNTIME_COMMAND,
    make_envelope,
    run_runtime,
    runtime_env,
    write_plugin,
)


def test_a_one_line_envelope_is_handled_while_stdin_is_still_open(tmp_path: Path) -> None:
    root = write_plugin(tmp_path, DISPATCH_PLUGIN)
    with subprocess.Popen(
        RUNTIME_COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=runtime_env(root),
        cwd=root,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(make_envelope()).encode() + b"\n")
        process.stdin.flush()
        try:  # stdin stays open: the runtime must not need its end to run the handler
            returncode = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        lines = [json.loads(line) for line in process.stdout.read().splitlines()]

    assert returncode == 0
    assert [line.get("control") for line in lines if "control" in line] == [
        "handler_started",
        "handler_finished",
    ]
    called = [json.loads(line["msg"]) for line in lines if line.get("stream") == "stdout"]
    assert called == [{"method": "on_submit", "args": [LABEL, "asset-1"]}]


@pytest.mark.parametrize(
    "stdin",
    [
        json.dumps(make_envelope(), indent=2).encode(),  # by hand, over several lines
        b"\n" + json.dumps(make_envelope()).encode() + b"\n",  # a blank line first
        json.dumps(make_envelope()).encode(),  # one line, no newline at the end
    ],
    ids=["several-lines", "blank-first-line", "no-newline"],
)
def test_an_envelope_that_is_not_one_whole_line_is_read_to_the_end(
    tmp_path: Path, stdin: bytes
) -> None:
    run = run_runtime(write_plugin(tmp_path, DISPATCH_PLUGIN), stdin)

    assert run.returncode == 0, run.lines
    assert [json.loads(m) for m in run.msgs("stdout")] == [
        {"method": "on_submit", "args": [LABEL, "asset-1"]}
    ]


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        (b"[1, 2]\n", "invalid envelope: envelope must be a JSON object, not list"),
        (b'{"project_id": \n', "invalid envelope: envelope is not valid JSON"),
    ],
)
def test_a_bad_first_line_is_the_same_invalid_envelope(
    tmp_path: Path, stdin: bytes, expected: str
) -> None:
    run = run_runtime(write_plugin(tmp_path, DISPATCH_PLUGIN), stdin)

    assert run.returncode == 2
    (message,) = run.msgs("logger", "ERROR")
    assert message.startswith(expected)


def test_the_executor_writes_the_envelope_as_one_line() -> None:
    """Newlines in the event (a label's text) are escaped by JSON: one line, one newline."""
    envelope = Envelope(
        invocation_id="inv",
        plugin="p",
        version=1,
        project_id="proj",
        event=EnvelopeEvent(
            type="onSubmit", asset_id="a", label={"text": "two\nlines\r\n"}, payload=None
        ),
        api=ApiInfo(url="http://127.0.0.1:9/api", token="tok", socket=None),
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
    )
    wire = envelope.wire()

    assert wire.count(b"\n") == 1 and wire.endswith(b"\n")
    assert json.loads(wire)["event"]["label"] == {"text": "two\nlines\r\n"}


class NoArguments:
    def __init__(self) -> None:
        self.made_with: tuple[Any, ...] = ()


class KiliForm:
    def __init__(self, kili: Any, project_id: str) -> None:
        self.made_with = (kili, project_id)


class UnreadableSignature(type):
    @property
    def __signature__(cls) -> Any:
        raise RuntimeError("computed by the plugin, and failing")


class Unreadable(metaclass=UnreadableSignature):
    def __init__(self, kili: Any, project_id: str) -> None:
        self.made_with = (kili, project_id)


@pytest.mark.parametrize(
    ("cls", "made_with"),
    [(NoArguments, ()), (KiliForm, ("kili", "proj")), (Unreadable, ("kili", "proj"))],
)
def test_the_handler_is_built_in_the_form_its_constructor_takes(
    cls: type, made_with: tuple[Any, ...]
) -> None:
    build = construction(cls)

    handler = build("kili", "proj")

    assert handler.made_with == made_with
    assert type(handler) is cls
