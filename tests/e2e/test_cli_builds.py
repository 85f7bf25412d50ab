"""Build, version and local-run commands of the CLI (in the test process: tests/cli_runner.py)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import docker
import pytest

from tests.cli_runner import run_cli
from tests.conftest import CA_BUNDLE, EXAMPLES, PLUGINS, RUNTIME_IMAGE, RunningServer
from tests.e2e.test_cli import cli

MAIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print({!r})\n"


def test_push_streams_build_log_then_versions_and_rollback(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "clirb"
    plugin.mkdir()
    (plugin / "requirements.txt").write_text(f"six==1.16.0  # {uuid.uuid4()}\n")
    for says in ("one", "two"):
        (plugin / "main.py").write_text(MAIN.format(says))
        pushed = cli(server, "push", str(plugin))
        # The build log is streamed on stdout, then the verdict.
        assert "==> Building image" in pushed.stdout
        assert "FROM plugin-executor-runtime" in pushed.stdout
        assert pushed.stdout.rstrip().endswith("is ACTIVE")
    assert "clirb v2 is ACTIVE" in pushed.stdout

    log = cli(server, "build-log", "clirb", "--version", "1").stdout
    assert "Building image plugin-executor/" in log
    assert "Resolved dependencies (pip freeze):\nsix==1.16.0\n" in log
    assert log.rstrip().endswith("clirb v1: ACTIVE")
    latest = json.loads(cli(server, "build-log", "clirb", "--json").stdout)
    assert latest["version"] == 2 and latest["pip_freeze"] == "six==1.16.0\n"

    table = json.loads(cli(server, "versions", "clirb", "--json").stdout)
    assert [(v["version"], v["current"]) for v in table] == [(1, False), (2, True)]
    activated = cli(server, "activate", "clirb", "--project", "clirb-p", "--version", "1")
    assert "clirb active on clirb-p for onSubmit (pinned to v1)" in activated.stdout
    rolled = cli(server, "rollback", "clirb")
    assert rolled.stdout.strip() == "clirb: rolled back from v2 to v1"
    refused = cli(server, "rollback", "clirb", ok=False)
    assert refused.returncode == 1
    assert "has no ACTIVE version before v1 to roll back to" in refused.stderr
    assert "[conflict, HTTP 409]" in refused.stderr


LAYER_LINE = re.compile(
    r"^(Step \d+/\d+ : | ---> |Removing intermediate container |Successfully (built|tagged) )",
    re.M,
)
STEP_DONE = re.compile(r"^==> (.+): done in \d+(\.\d)? s( \(from the engine's cache\))?$", re.M)


def test_push_shows_the_steps_with_their_times_and_layer_lines_only_verbose(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "clisteps"
    plugin.mkdir()
    (plugin / "main.py").write_text(MAIN.format("steps"))
    (plugin / "requirements.txt").write_text(f"six==1.16.0  # {uuid.uuid4()}\n")
    pushed = cli(server, "push", str(plugin)).stdout
    assert [step for step, _, _ in STEP_DONE.findall(pushed)] == [
        "Preparing the runtime flavor image",
        "Installing requirements.txt (pip)",
        "Adding the plugin's code",
        "Import check: loading main.py as a run will (sandboxed, no network)",
    ], pushed
    assert re.search(
        r"^==> Built plugin-executor/p-\S+ \(sha256:[0-9a-f]+\) in [0-9.]+ s$", pushed, re.M
    ), pushed
    assert "Successfully installed six-1.16.0" in pushed  # pip's own output stays
    assert not LAYER_LINE.search(pushed), pushed
    assert pushed.rstrip().endswith("clisteps v1 is ACTIVE")

    default = cli(server, "build-log", "clisteps").stdout
    verbose = cli(server, "build-log", "clisteps", "--verbose").stdout
    assert not LAYER_LINE.search(default) and STEP_DONE.search(default)
    for layer_line in ("Step 1/", " ---> ", "Removing intermediate container ", "Running in "):
        assert layer_line in verbose
    assert [line for line in verbose.splitlines() if not LAYER_LINE.match(line)] == [
        line for line in default.splitlines()
    ]
    (plugin / "main.py").write_text(MAIN.format("again"))
    again = cli(server, "push", str(plugin), "-v").stdout
    assert "Step 1/" in again and STEP_DONE.search(again)


def test_a_failing_step_shows_in_full(server: RunningServer, tmp_path: Path) -> None:
    plugin = tmp_path / "clifails"
    plugin.mkdir()
    (plugin / "main.py").write_text(MAIN.format("never"))
    (plugin / "requirements.txt").write_text("six==0.0.404\n")
    failed = cli(server, "push", str(plugin), ok=False)
    assert failed.returncode == 1
    out = failed.stdout
    assert re.search(
        r"^==> Installing requirements.txt \(pip\): FAILED after [0-9.]+ s$", out, re.M
    )
    # pip's error, whole, and the step's error; no layer line.
    assert "ERROR: Could not find a version that satisfies the requirement six==0.0.404" in out
    assert "ERROR: No matching distribution found for six==0.0.404" in out
    assert "BUILD FAILED: The command '/bin/sh -c PIP_CONFIG_FILE=/dev/null" in out
    assert not LAYER_LINE.search(out), out
    assert "build FAILED:" in failed.stderr


def local_env() -> dict[str, str]:
    # The runtime image under test, and so its flavors (the runtime_image fixture builds them).
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "EXECUTOR_RUNTIME_IMAGE": RUNTIME_IMAGE}
    if CA_BUNDLE.exists():
        env["EXECUTOR_BUILD_CA_BUNDLE"] = str(CA_BUNDLE)
    return env


def local(*args: str) -> subprocess.CompletedProcess[str]:
    """A command that needs no server (``run``, ``sample-event``, ...), in this process."""
    return run_cli(args, local_env())


def test_sample_events_ship_for_each_handler_type() -> None:
    for event_type in ("onSubmit", "onReview", "onCustomInterfaceClick", "onSendBackToQueue"):
        done = local("sample-event", event_type)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["type"] == event_type
    unknown = local("sample-event", "onNothing")
    assert unknown.returncode == 2
    assert "no sample for 'onNothing'" in unknown.stderr


@pytest.fixture
def local_images(docker_client: docker.DockerClient) -> Iterator[None]:
    """Removes the images the local runs tag (one per plugin folder name)."""
    yield
    for tag in ("plugin-executor/p-local-invoice-qa:v0", "plugin-executor/p-local-raising:v0"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


def test_local_run_prints_logs_and_exits_with_the_plugins_status(
    tmp_path: Path, runtime_image: str, local_images: None
) -> None:
    event = tmp_path / "event.json"
    event.write_text(local("sample-event", "onSubmit").stdout)

    ok = local("run", str(EXAMPLES / "invoice_qa"), "--event", str(event))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        "INFO     asset asset-001 ACCEPTED",
        "INFO     checked project local-project",
    ]
    assert ok.stderr.rstrip().endswith("run succeeded")
    # The build's steps with their times; the engine's layer lines only with --verbose.
    assert STEP_DONE.search(ok.stderr) and not LAYER_LINE.search(ok.stderr), ok.stderr

    raised = local("run", str(PLUGINS / "raising"), "--event", str(event), "--verbose")
    assert "Step 1/" in raised.stderr and STEP_DONE.search(raised.stderr)
    assert raised.returncode == 1
    assert raised.stdout.startswith("INFO     about to fail\nERROR    ")
    assert "ZeroDivisionError: division by zero" in raised.stdout
    assert "the handler raised ZeroDivisionError: division by zero (main.py:5)\n" in raised.stderr
    assert raised.stderr.rstrip().endswith("run failed: plugin exited with code 1")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.py").write_text(MAIN.format("x"))
    (bad / "requirements.txt").write_text("-i https://evil.example/simple\n")
    refused = local("run", str(bad), "--event", str(event))
    assert refused.returncode == 3
    assert "requirements.txt, line 1: the option '-i' is not allowed" in refused.stderr


API_PLUGIN = """class PluginHandler:
    def on_submit(self, label, asset_id):
        asset = self.api.get(f"assets/{asset_id}")
        print("platform says", asset["status"], "for", asset["id"])
"""


class _Platform(http.server.BaseHTTPRequestHandler):
    """A local platform API: GET /api/assets/<id> answers JSON and remembers the call."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"id": self.path.rsplit("/", 1)[-1], "status": "LABELED"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_local_run_reaches_a_local_platform_through_the_gateway(
    tmp_path: Path, runtime_image: str, docker_client: docker.DockerClient
) -> None:
    platform = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    threading.Thread(target=platform.serve_forever, daemon=True).start()
    plugin = tmp_path / "apiuser"
    plugin.mkdir()
    (plugin / "main.py").write_text(API_PLUGIN)
    event = tmp_path / "event.json"
    event.write_text(local("sample-event", "onSubmit").stdout)
    url = f"http://127.0.0.1:{platform.server_address[1]}/api"
    try:
        done = local("run", str(plugin), "--event", str(event), "--api-url", url)
    finally:
        platform.shutdown()
        platform.server_close()
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove("plugin-executor/p-local-apiuser:v0", force=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["INFO     platform says LABELED for asset-001"]
    assert "1 platform API call(s) through the gateway" in done.stderr
    (path, authorization) = _Platform.seen[-1]
    assert path == "/api/assets/asset-001"
    assert authorization is None  # the run token never reaches the platform
