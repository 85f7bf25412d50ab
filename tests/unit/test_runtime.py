"""Tests of the in-container runtime ``plugin_runtime``, run as a subprocess on the host Python.

Each test writes (or copies) a plugin to ``<tmp>/plugin_code/``, runs
``python -m plugin_runtime`` with ``PYTHONPATH=runtime_image`` and ``PLUGIN_ROOT=<tmp>``,
feeds the envelope on stdin and checks the JSON lines on stdout and the exit code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME_DIR = REPO / "runtime_image"
FIXTURES = REPO / "tests" / "plugins"
TOKEN = "tok-6f1d9c2e-SECRET-a7b3"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
LABEL = {"jsonResponse": {"JOB_0": {"text": "FR76"}}, "id": "label-1"}
PAYLOAD = {"issue": {"id": "issue-9"}}
CONTROL_FIELDS = (
    {"control", "handler", "time"},
    {"control", "ok", "time"},
    {"control", "error_type", "error_message", "error_location", "time"},
)


@dataclass
class Run:
    """Result of one runtime process: exit code and the parsed protocol lines."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str
    stdout: bytes = b""

    @property
    def records(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "level" in line]

    @property
    def controls(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "control" in line]

    def msgs(self, stream: str | None = None, level: str | None = None) -> list[str]:
        return [
            r["msg"]
            for r in self.records
            if (stream is None or r["stream"] == stream) and (level is None or r["level"] == level)
        ]


def make_envelope(
    event_type: str = "onSubmit", api_url: str = "http://127.0.0.1:9"
) -> dict[str, Any]:
    return {
        "invocation_id": "inv-1",
        "plugin": "qa",
        "version": "3",
        "project_id": "proj-1",
        "event": {"type": event_type, "asset_id": "asset-1", "label": LABEL, "payload": PAYLOAD},
        "api": {"url": api_url, "token": TOKEN},
        "deadline": "2026-11-27T03:41:00.000Z",
    }


def write_plugin(root: Path, source: str, files: dict[str, str] | None = None) -> Path:
    code = root / "plugin_code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "main.py").write_text(textwrap.dedent(source))
    for name, text in (files or {}).items():
        (code / name).write_text(textwrap.dedent(text))
    return root


RUNTIME_COMMAND = [sys.executable, "-m", "plugin_runtime"]


def runtime_env(root: Path) -> dict[str, str]:
    """The runtime's environment for the plugin under ``root``: the host's, less its own
    Python and Kili settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "KILI_"))}
    env.update(PYTHONPATH=str(RUNTIME_DIR), PLUGIN_ROOT=str(root), PYTHONDONTWRITEBYTECODE="1")
    return env


def run_runtime(root: Path, stdin: dict[str, Any] | bytes | Path) -> Run:
    """The runtime on ``stdin``: an envelope, raw bytes, or a file (whole before it starts)."""
    command = RUNTIME_COMMAND
    common: dict[str, Any] = {
        "capture_output": True,
        "env": runtime_env(root),
        "cwd": root,
        "timeout": 60,
    }
    if isinstance(stdin, Path):
        with stdin.open("rb") as file:
            proc = subprocess.run(command, stdin=file, check=False, **common)
    else:
        data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
        proc = subprocess.run(command, input=data, check=False, **common)
    stdout = proc.stdout.decode("utf-8")
    assert TOKEN not in stdout
    lines = [json.loads(line) for line in stdout.splitlines()]  # every line is one object
    for line in lines:
        if "control" in line:
            assert set(line) in CONTROL_FIELDS, line
        else:
            assert set(line) - {"part_of"} == {"level", "time", "msg", "stream"}, line
            assert line["level"] in LEVELS
            assert line["stream"] in {"logger", "stdout", "stderr"}
        assert TIME_RE.match(line["time"]), line
    return Run(proc.returncode, lines, proc.stderr.decode("utf-8", "replace"), proc.stdout)


DISPATCH_PLUGIN = """
    import json
    from plugin_runtime import PluginCore

    def report(name, *args):
        print(json.dumps({"method": name, "args": list(args)}))

    class PluginHandler(PluginCore):
        def on_submit(self, label, asset_id):
            report("on_submit", label, asset_id)

        def on_review(self, label, asset_id):
            report("on_review", label, asset_id)

        def on_custom_interface_click(self, label, asset_id):
            report("on_custom_interface_click", label, asset_id)

        def on_send_back_to_queue(self, asset_id):
            report("on_send_back_to_queue", asset_id)

        def on_event(self, payload):
            report("on_event", payload)
"""


@pytest.mark.parametrize(
    ("event_type", "method", "args"),
    [
        ("onSubmit", "on_submit", [LABEL, "asset-1"]),
        ("onReview", "on_review", [LABEL, "asset-1"]),
        ("onCustomInterfaceClick", "on_custom_interface_click", [LABEL, "asset-1"]),
        ("onSendBackToQueue", "on_send_back_to_queue", ["asset-1"]),
        ("asset.issue.created", "on_event", [PAYLOAD]),
    ],
)
def test_event_dispatches_to_the_right_method(
    tmp_path: Path, event_type: str, method: str, args: list[Any]
) -> None:
    run = run_runtime(write_plugin(tmp_path, DISPATCH_PLUGIN), make_envelope(event_type))

    assert run.returncode == 0, run.lines
    assert [json.loads(m) for m in run.msgs("stdout")] == [{"method": method, "args": args}]
    assert [c["control"] for c in run.lines if "control" in c] == [
        "handler_started",
        "handler_finished",
    ]
    assert run.lines[0] == {"control": "handler_started", "handler": method, "time": ANY_TIME}
    assert run.lines[-1]["control"] == "handler_finished"
    assert run.lines[-1]["ok"] is True


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(TIME_RE.match(other))


ANY_TIME = _AnyTime()


def test_plugin_core_attributes_are_set(tmp_path: Path) -> None:
    source = """
        import json, logging
        from plugin_runtime import ApiClient, PluginCore

        class PluginHandler(PluginCore):
            def __init__(self, kili, project_id):
                super().__init__(kili, project_id)
                self.api_in_init = self.api is not None

            def on_submit(self, label, asset_id):
                print(json.dumps({
                    "project_id": self.project_id,
                    "logger": [isinstance(self.logger, logging.Logger), self.logger.name,
                               self.logger.level],
                    "kili": self.kili,
                    "api": [isinstance(self.api, ApiClient), self.api.base_url],
                    "api_in_init": self.api_in_init,
                }))
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope(api_url="http://gw:8/v1/"))

    assert run.returncode == 0, run.lines
    assert json.loads(run.msgs("stdout")[0]) == {
        "project_id": "proj-1",
        "logger": [True, "plugin", 10],
        "kili": None,  # the kili package is not installed here
        "api": [True, "http://gw:8/v1"],
        "api_in_init": True,
    }


def test_handler_without_plugin_core_base_gets_attributes(tmp_path: Path) -> None:
    source = """
        class PluginHandler:
            def on_review(self, label, asset_id):
                print(self.project_id, self.logger.name, self.kili, type(self.api).__name__)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope("onReview"))

    assert run.returncode == 0, run.lines
    assert run.msgs("stdout") == ["proj-1 plugin None ApiClient"]


def test_logger_print_and_warnings_are_kept(tmp_path: Path) -> None:
    source = """
        import logging, warnings
        from plugin_runtime import PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                self.logger.debug("debug %s", 1)
                self.logger.info("info")
                self.logger.warning("warning")
                self.logger.error("error")
                self.logger.critical("critical")
                try:
                    1 / 0
                except ZeroDivisionError:
                    self.logger.exception("division failed")
                logging.getLogger("some.library").warning("library warning")
                logging.getLogger("some.library").info("library info is below WARNING")
                warnings.warn("deprecated thing", UserWarning, stacklevel=1)
                print("first\\nsecond")
                print("héllo ✓")
                print("no newline", end="")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.lines
    logger = [(r["level"], r["msg"]) for r in run.records if r["stream"] == "logger"]
    assert logger[:5] == [
        ("DEBUG", "debug 1"),
        ("INFO", "info"),
        ("WARNING", "warning"),
        ("ERROR", "error"),
        ("CRITICAL", "critical"),
    ]
    level, msg = logger[5]
    assert level == "ERROR"
    assert msg.startswith("division failed\nTraceback (most recent call last):\n")
    assert msg.endswith("ZeroDivisionError: division by zero")
    assert logger[6] == ("WARNING", "library warning")
    assert logger[7][0] == "WARNING"
    assert "UserWarning: deprecated thing" in logger[7][1]
    assert len(logger) == 8
    assert run.msgs("stdout", "INFO") == ["first", "second", "héllo ✓", "no newline"]
    # the partial line is flushed before the handler is reported finished
    assert run.lines[-2]["msg"] == "no newline"
    assert run.lines[-1]["control"] == "handler_finished"


def test_stderr_is_info_unless_it_reads_as_a_problem(tmp_path: Path) -> None:
    source = """
        import sys, traceback

        class PluginHandler:
            def on_submit(self, label, asset_id):
                sys.stderr.write("Uploading assets\\n")
                print("ERROR: the platform refused", file=sys.stderr)
                # as the warnings module prints a warning of a library that bypasses logging
                print("/lib/sdk.py:3: DeprecationWarning: old call", file=sys.stderr)
                print("WARNING: retrying", file=sys.stderr)
                try:
                    raise KeyError("x")
                except KeyError:
                    traceback.print_exc()
                print("done", file=sys.stderr)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0
    stderr = [(r["level"], r["msg"]) for r in run.records if r["stream"] == "stderr"]
    assert stderr[:4] == [
        ("INFO", "Uploading assets"),
        ("ERROR", "ERROR: the platform refused"),
        ("WARNING", "/lib/sdk.py:3: DeprecationWarning: old call"),
        ("WARNING", "WARNING: retrying"),
    ]
    traceback = stderr[4:-1]
    assert len(traceback) >= 4
    assert traceback[0] == ("ERROR", "Traceback (most recent call last):")
    assert traceback[-1] == ("ERROR", "KeyError: 'x'")
    assert {level for level, _ in traceback} == {"ERROR"}
    assert stderr[-1] == ("INFO", "done")


def test_a_progress_bar_is_kept_as_its_final_state(tmp_path: Path) -> None:
    """tqdm redraws its bar as "\\r" + the whole bar, without a newline until it closes."""
    source = """
        import sys

        class PluginHandler:
            def on_submit(self, label, asset_id):
                for done in range(0, 101, 10):
                    sys.stderr.write(f"\\rUploading: {done:3d}%|" + "#" * (done // 10))
                    sys.stderr.flush()
                sys.stderr.write("\\n")
                print("before\\rafter")
                sys.stderr.write("\\rhalf-drawn 50%")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0
    assert [(r["level"], r["stream"], r["msg"]) for r in run.records] == [
        ("INFO", "stderr", "Uploading: 100%|##########"),
        ("INFO", "stdout", "before\rafter"),  # stdout is kept as written
        ("INFO", "stderr", "half-drawn 50%"),
    ]


def test_output_bypassing_sys_stdout_is_still_one_json_object_per_line(tmp_path: Path) -> None:
    source = """
        import os, subprocess, sys

        class PluginHandler:
            def on_submit(self, label, asset_id):
                subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
                os.write(1, b"raw write to fd 1\\n")
                sys.stdout.buffer.write("bytes via buffer\\n".encode())
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.stderr
    assert sorted(run.msgs("stdout")) == [
        "bytes via buffer",
        "from a child process",
        "raw write to fd 1",
    ]
    assert run.lines[-1]["control"] == "handler_finished"


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    source = """
        import threading
        from plugin_runtime import PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                def work(n):
                    for i in range(100):
                        print(f"thread {n} line {i} " + "x" * 200)
                        self.logger.info("thread %d record %d", n, i)
                threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0
    assert len(run.msgs("stdout")) == 800
    assert all(m.endswith("x" * 200) for m in run.msgs("stdout"))
    assert len(run.msgs("logger", "INFO")) == 800


@pytest.mark.parametrize("with_init", [True, False])
def test_relative_imports_of_module_and_subpackage(tmp_path: Path, with_init: bool) -> None:
    shutil.copytree(FIXTURES / "runtime_relative", tmp_path / "plugin_code")
    if with_init:
        (tmp_path / "plugin_code" / "__init__.py").write_text("")
    run = run_runtime(tmp_path, make_envelope())

    assert run.returncode == 0, run.lines
    assert run.msgs("stdout") == ["ASSET-1!", "KEYS=ID,JSONRESPONSE!"]


def test_raising_handler_exits_1_with_its_traceback_in_one_record(tmp_path: Path) -> None:
    source = """
        def check(label):
            raise ValueError("IBAN must start with FR")

        class PluginHandler:
            def on_submit(self, label, asset_id):
                print("checking")
                check(label)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 1
    errors = run.msgs("logger", "ERROR")
    assert len(errors) == 1
    msg = errors[0]
    assert msg.startswith("PluginHandler.on_submit() raised:\nTraceback (most recent call last):")
    assert "in on_submit\n" in msg
    assert "in check\n" in msg
    assert 'main.py", line 3' in msg
    assert msg.endswith("ValueError: IBAN must start with FR")
    assert "plugin_runtime" not in msg
    assert run.lines[-1]["control"] == "handler_finished"
    assert run.lines[-1]["ok"] is False


def test_async_handler_is_awaited(tmp_path: Path) -> None:
    source = """
        import asyncio

        class PluginHandler:
            async def on_submit(self, label, asset_id):
                await asyncio.sleep(0)
                print("awaited", asset_id)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 0, run.lines
    assert run.msgs("stdout") == ["awaited asset-1"]


def test_raising_constructor_exits_1(tmp_path: Path) -> None:
    source = """
        class PluginHandler:
            def __init__(self, kili, project_id):
                raise RuntimeError("bad config")

            def on_submit(self, label, asset_id):
                pass
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 1
    (msg,) = run.msgs("logger", "ERROR")
    assert msg.startswith("PluginHandler() raised:\nTraceback")
    assert msg.endswith("RuntimeError: bad config")
    assert run.controls == [
        {
            **run.controls[0],
            "control": "error",
            "error_type": "RuntimeError",
            "error_message": "bad config",
            "error_location": "main.py:4",  # the source starts with a blank line
        }
    ]


@pytest.mark.parametrize(
    ("event_type", "message"),
    [
        ("onReview", "PluginHandler has no on_review(); event onReview ignored"),
        (
            "asset.issue.created",
            "PluginHandler has no on_event(); event asset.issue.created ignored",
        ),
    ],
)
def test_missing_handler_method_is_a_warning(tmp_path: Path, event_type: str, message: str) -> None:
    source = """
        from plugin_runtime import PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                print("should not run")
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope(event_type))

    assert run.returncode == 0
    assert [(r["level"], r["msg"]) for r in run.records] == [("WARNING", message)]
    assert run.controls == []


def _envelope_with(path: str, value: Any) -> bytes:
    doc: Any = make_envelope()
    *parents, key = path.split(".")
    target = doc
    for name in parents:
        target = target[name]
    if value is _DELETE:
        del target[key]
    else:
        target[key] = value
    return json.dumps(doc).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        (b"", "stdin is empty"),
        (b"  \n", "stdin is empty"),
        (b'{"project_id": ', "envelope is not valid JSON"),
        (b"\xff\xfe", "envelope is not valid UTF-8"),
        (b"[1, 2]", "envelope must be a JSON object, not list"),
        (_envelope_with("event", _DELETE), "missing field event"),
        (_envelope_with("event.type", _DELETE), "missing field event.type"),
        (_envelope_with("event.type", ""), "field event.type must not be empty"),
        (_envelope_with("event.label", [1]), "field event.label must be dict, not list"),
        (_envelope_with("api.token", _DELETE), "missing field api.token"),
        (_envelope_with("api.url", "ftp://x"), "field api.url must be an http:// or https:// URL"),
        (_envelope_with("project_id", 7), "field project_id must be str, not int"),
    ],
)
def test_malformed_envelope_exits_2_saying_what_is_wrong(
    tmp_path: Path, stdin: bytes, expected: str
) -> None:
    run = run_runtime(write_plugin(tmp_path, DISPATCH_PLUGIN), stdin)

    assert run.returncode == 2
    assert len(run.lines) == 1
    (record,) = run.records
    assert record["level"] == "ERROR"
    assert record["msg"].startswith("invalid envelope: ")
    assert expected in record["msg"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class PluginHandler:\n    def on_submit(self, label, asset_id)\n        pass\n",
         ["could not import plugin_code.main", "SyntaxError", 'main.py", line 2']),
        ("import no_such_module_xyz\n",
         ["ModuleNotFoundError: No module named 'no_such_module_xyz'"]),
        ("raise RuntimeError('fails at import')\n",
         ["Traceback (most recent call last):", "RuntimeError: fails at import"]),
        ("class SomethingElse:\n    pass\n", ["main.py defines no class PluginHandler"]),
    ],
)  # fmt: skip
def test_plugin_that_cannot_load_exits_2(tmp_path: Path, source: str, expected: list[str]) -> None:
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())

    assert run.returncode == 2
    assert run.controls == []
    (msg,) = run.msgs("logger", "ERROR")
    for fragment in expected:
        assert fragment in msg


def test_missing_main_py_exits_2(tmp_path: Path) -> None:
    (tmp_path / "plugin_code").mkdir()
    run = run_runtime(tmp_path, make_envelope())

    assert run.returncode == 2
    assert run.msgs("logger", "ERROR") == [
        f"no plugin code: {tmp_path}/plugin_code/main.py does not exist"
    ]


@dataclass
class FakePlatform:
    """An ``http.server`` on 127.0.0.1 that records requests and answers by path."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else None
            seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            if self.path.endswith("/forbidden"):
                echoed = self.headers.get("Authorization", "")
                self._reply(403, json.dumps({"error": f"forbidden for {echoed}"}).encode())
            elif self.command == "DELETE":
                self._reply(204, b"")
            else:
                self._reply(200, json.dumps({"echo": self.path}).encode())

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakePlatform(f"http://127.0.0.1:{server.server_address[1]}/api/v1/", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


API_PLUGIN = """
    import json
    from plugin_runtime import ApiError, PluginCore

    class PluginHandler(PluginCore):
        def on_submit(self, label, asset_id):
            out = {
                "post": self.api.post("assets/a1/issues", json={"text": "bad IBAN"},
                                      params={"kind": "QA", "n": 2}),
                "get": self.api.get("/projects/p1"),
                "put": self.api.put("assets/a1", json=[1, 2]),
                "patch": self.api.patch("assets/a1/metadata", json={"accuracy": 0.5}),
                "delete": self.api.delete("assets/a1/issues/i1"),
            }
            print(json.dumps(out))
            try:
                self.api.get("forbidden")
            except ApiError as exc:
                print(json.dumps({"error": str(exc), "status": exc.status}))
            try:
                self.api.get("http://elsewhere.example/steal")
            except ValueError as exc:
                print(json.dumps({"absolute": str(exc)}))
            print(repr(self.api))
"""


def test_api_client_against_a_real_http_server(tmp_path: Path, platform: FakePlatform) -> None:
    run = run_runtime(write_plugin(tmp_path, API_PLUGIN), make_envelope(api_url=platform.url))

    assert run.returncode == 0, run.lines
    out, error, absolute, api_repr = run.msgs("stdout")
    assert json.loads(out) == {
        "post": {"echo": "/api/v1/assets/a1/issues?kind=QA&n=2"},
        "get": {"echo": "/api/v1/projects/p1"},
        "put": {"echo": "/api/v1/assets/a1"},
        "patch": {"echo": "/api/v1/assets/a1/metadata"},
        "delete": None,
    }
    assert [(r["method"], r["path"]) for r in platform.requests] == [
        ("POST", "/api/v1/assets/a1/issues?kind=QA&n=2"),
        ("GET", "/api/v1/projects/p1"),
        ("PUT", "/api/v1/assets/a1"),
        ("PATCH", "/api/v1/assets/a1/metadata"),
        ("DELETE", "/api/v1/assets/a1/issues/i1"),
        ("GET", "/api/v1/forbidden"),
    ]
    for request in platform.requests:
        assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert request["headers"]["x-api-key"] == TOKEN
    post = platform.requests[0]
    assert post["headers"]["content-type"] == "application/json"
    assert json.loads(post["body"]) == {"text": "bad IBAN"}
    assert json.loads(platform.requests[2]["body"]) == [1, 2]
    assert platform.requests[1]["body"] is None

    failure = json.loads(error)
    assert failure["status"] == 403
    assert failure["error"].startswith("GET forbidden failed: HTTP 403: ")
    assert '"error": "forbidden for Bearer ***"' in failure["error"]
    assert "relative to the API base URL" in json.loads(absolute)["absolute"]
    assert api_repr == f"ApiClient(base_url={platform.url.rstrip('/')!r})"


def test_api_connection_error_is_an_api_error(tmp_path: Path) -> None:
    source = """
        from plugin_runtime import ApiError, PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                try:
                    self.api.get("projects")
                except ApiError as exc:
                    print(exc.status, exc)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope(api_url="http://127.0.0.1:1"))

    assert run.returncode == 0
    (line,) = run.msgs("stdout")
    assert line.startswith("None GET projects failed: no response (")


def test_token_never_reaches_stdout_environment_or_repr(tmp_path: Path) -> None:
    source = """
        import os
        from plugin_runtime import PluginCore

        class PluginHandler(PluginCore):
            def on_submit(self, label, asset_id):
                print("environ", dict(os.environ))
                print("vars", vars(self))
                # a plugin that prints the token by mistake gets it redacted
                self.logger.info("token is %s", self.api._ApiClient__token)
    """
    run = run_runtime(write_plugin(tmp_path, source), make_envelope())  # asserts no TOKEN

    assert run.returncode == 0
    assert run.msgs("logger", "INFO") == ["token is ***"]
