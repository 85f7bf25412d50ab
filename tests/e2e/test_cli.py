"""The CLI as a user runs it, talking to a real executor on loopback (in the test process:
``tests/cli_runner.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli_runner import run_cli
from tests.conftest import EXAMPLES, OPERATOR_KEY, RunningServer, ServerFactory

CLI = [sys.executable, "-m", "executor.cli"]


def cli(
    server: RunningServer, *args: str, ok: bool = True, key: str = OPERATOR_KEY
) -> subprocess.CompletedProcess[str]:
    env = {
        "EXECUTOR_URL": server.url,
        "EXECUTOR_API_KEY": key,
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    done = run_cli(args, env)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_push_activate_event_logs_round_trip(server_factory: ServerFactory) -> None:
    # A server of its own: the listing and the version number must not depend on which tests
    # of the module ran before.
    server = server_factory()
    pushed = cli(server, "push", str(EXAMPLES / "invoice_qa"))
    assert "invoice_qa v1 is ACTIVE" in pushed.stdout
    activated = cli(server, "activate", "invoice_qa", "--project", "cli-proj")
    assert "invoice_qa active on cli-proj for onSubmit" in activated.stdout
    listed = json.loads(cli(server, "list", "--json").stdout)
    assert [(p["name"], p["status"], p["projects"]) for p in listed] == [
        ("invoice_qa", "ACTIVE", ["cli-proj"])
    ]
    posted = cli(
        server,
        "event",
        "--file",
        str(EXAMPLES / "invoice_qa" / "sample_event.json"),
        "--project",
        "cli-proj",
        "--wait",
        "--json",
    )
    result = json.loads(posted.stdout)
    (run,) = result["runs"]
    assert run["status"] == "succeeded"
    logs = cli(server, "logs", "invoice_qa", "--project", "cli-proj").stdout
    assert (
        "WARNING  asset invoice-042: IBAN 'DE89370400440532013000' does not start with FR" in logs
    )
    assert "INFO     asset invoice-042 REJECTED (2 problems)" in logs
    as_json = json.loads(
        cli(server, "logs", "invoice_qa", "--project", "cli-proj", "--json").stdout
    )
    assert {r["run_id"] for r in as_json} == {run["id"]} and len(as_json) == 5  # + SYSTEM
    status = cli(server, "status", run["id"]).stdout
    assert "succeeded" in status and "onSubmit" in status


def test_push_of_a_failing_build_prints_the_build_log_and_exits_1(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "nobuild"
    plugin.mkdir()
    (plugin / "main.py").write_text(
        "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"
    )
    (plugin / "requirements.txt").write_text("no-such-distribution-pe-777==1.0\n")
    done = cli(server, "push", str(plugin), ok=False)
    assert done.returncode == 1
    assert "no-such-distribution-pe-777" in done.stdout
    assert "build FAILED" in done.stderr


def test_push_of_a_refused_plugin_names_file_and_line(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "badsyntax"
    plugin.mkdir()
    (plugin / "main.py").write_text("class PluginHandler:\n    def on_submit(self\n")
    done = cli(server, "push", str(plugin), ok=False)
    assert done.returncode == 1
    assert "main.py" in done.stderr and "line 2" in done.stderr
    assert "plugin_rejected, HTTP 422" in done.stderr
    assert server.api.get("/v1/plugins/badsyntax").status_code == 404


def test_cli_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "EXECUTOR_URL": "http://127.0.0.1:9", "EXECUTOR_API_KEY": "k"}
    done = subprocess.run([*CLI, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot reach the executor at http://127.0.0.1:9" in done.stderr
    assert "plugin-executor serve" in done.stderr
