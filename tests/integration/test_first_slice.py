"""The first slice end to end on a real executor: upload, build, activate, event, run, logs."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, PLUGINS, RunningServer, ServerFactory

INVOICE_OK = {
    "jsonResponse": {"PAYMENT_JOB": {"IBAN": {"text": "FR7630006"}, "CURRENCY": {"text": "EUR"}}}
}
INVOICE_BAD = {
    "id": "label-7",
    "jsonResponse": {"PAYMENT_JOB": {"IBAN": {"text": "DE89370400"}, "CURRENCY": {"text": "GBP"}}},
}


def contents(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["log_type"], r["content"]) for r in records]


def test_qa_plugin_logs_its_verdicts(server: RunningServer) -> None:
    build = server.push(EXAMPLES / "invoice_qa")
    assert "Built plugin-executor/" in build["log"]
    activation = server.activate("invoice_qa", "invoices")
    assert activation["events"] == ["onSubmit"] and activation["events_default"] is True

    good = server.run_event(type="onSubmit", project_id="invoices", asset_id="a1", label=INVOICE_OK)
    bad = server.run_event(type="onSubmit", project_id="invoices", asset_id="a2", label=INVOICE_BAD)

    assert good["status"] == "succeeded" and good["exit_code"] == 0
    assert contents(server.logs(run_id=good["id"])) == [
        ("INFO", "asset a1 ACCEPTED"),
        ("INFO", "checked project invoices"),
        ("SYSTEM", f"run ended succeeded in {good['duration_ms']} ms"),
    ]
    assert bad["status"] == "succeeded"
    bad_logs = server.logs(run_id=bad["id"])
    assert contents(bad_logs) == [
        ("WARNING", "asset a2: IBAN 'DE89370400' does not start with FR"),
        ("WARNING", "asset a2: currency 'GBP' is not EUR or USD"),
        ("INFO", "asset a2 REJECTED (2 problems)"),
        ("INFO", "checked project invoices"),
        ("SYSTEM", f"run ended succeeded in {bad['duration_ms']} ms"),
    ]
    first = bad_logs[0]
    assert first["plugin_name"] == "invoice_qa" and first["project_id"] == "invoices"
    # The REST names, and Kili's (get_plugin_logs) beside them.
    assert first["metadata"] == {
        "asset_id": "a2",
        "label_id": "label-7",
        "assetId": "a2",
        "labelId": "label-7",
    }
    assert [r["seq"] for r in bad_logs] == [1, 2, 3, 4, 5]
    assert [r["stream"] for r in bad_logs] == ["logger", "logger", "logger", "stdout", "system"]
    # Kili's query parameters: project and plugin, oldest first, limit and skip.
    all_logs = server.logs(project_id="invoices", plugin_name="invoice_qa")
    assert [r["run_id"] for r in all_logs] == [good["id"]] * 3 + [bad["id"]] * 5
    page = server.logs(project_id="invoices", plugin_name="invoice_qa", limit=2, skip=3)
    assert [r["id"] for r in page] == [r["id"] for r in all_logs[3:5]]
    assert good["handler_started_at"] is not None and good["start_latency_ms"] >= 0
    assert good["duration_ms"] > 0 and good["start"] == "cold"


def test_event_runs_only_matching_active_plugins(server: RunningServer) -> None:
    server.push("folder_relative")  # has on_review only
    server.activate("folder_relative", "reviews")
    submit = server.post_event(type="onSubmit", project_id="reviews", asset_id="x", label={})
    assert submit["invocations"] == []
    other_project = server.post_event(
        type="onReview", project_id="elsewhere", asset_id="x", label={}
    )
    assert other_project["invocations"] == []
    run = server.run_event(type="onReview", project_id="reviews", asset_id="x", label={})
    assert run["status"] == "succeeded", run
    assert contents(server.logs(run_id=run["id"]))[:-1] == [("INFO", "1 RULES, IBAN OK: TRUE")]


def test_deactivated_plugin_does_not_run(server: RunningServer) -> None:
    server.push(EXAMPLES / "invoice_qa", name="qa_deactivated")
    server.activate("qa_deactivated", "p-deact")
    assert server.api.delete("/v1/projects/p-deact/plugins/qa_deactivated").status_code == 204
    accepted = server.post_event(type="onSubmit", project_id="p-deact", asset_id="a", label={})
    assert accepted["invocations"] == []


def unique_requirements(requirements: str) -> str:
    """The same requirements in a file no earlier build had, so pip really runs."""
    return f"{requirements.rstrip()}  # build {uuid.uuid4().hex}\n"


def test_plugin_with_a_requirement_builds_and_imports_it(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "with_requirement"
    shutil.copytree(PLUGINS / "with_requirement", plugin)
    (plugin / "requirements.txt").write_text(
        unique_requirements((plugin / "requirements.txt").read_text())
    )
    build = server.push(plugin)
    assert "Successfully installed six-1.16.0" in build["log"]
    server.activate("with_requirement", "req")
    run = server.run_event(type="onSubmit", project_id="req", asset_id="a", label={})
    assert run["status"] == "succeeded", run
    line, _ = contents(server.logs(run_id=run["id"]))  # and the SYSTEM line
    assert line[0] == "INFO" and line[1].startswith("six 1.16.0 from /opt/venv/")


def test_raising_handler_fails_with_its_traceback(server: RunningServer) -> None:
    server.push("raising")
    server.activate("raising", "raise")
    run = server.run_event(type="onSubmit", project_id="raise", asset_id="a", label={})
    assert run["status"] == "failed" and run["exit_code"] == 1
    assert run["error"] == "plugin exited with code 1"
    logs = server.logs(run_id=run["id"])
    assert logs[0]["content"] == "about to fail"
    tracebacks = [r for r in logs if r["log_type"] == "ERROR"]
    assert len(tracebacks) == 1
    text = tracebacks[0]["content"]
    assert "Traceback (most recent call last)" in text
    assert "ZeroDivisionError: division by zero" in text and "in divide" in text
    assert logs[-1]["log_type"] == "SYSTEM" and "failed" in logs[-1]["content"]


def test_failed_build_keeps_its_log(server: RunningServer, tmp_path: Any) -> None:
    plugin = tmp_path / "broken_req"
    plugin.mkdir()
    (plugin / "main.py").write_text(
        "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"
    )
    (plugin / "requirements.txt").write_text("this-package-does-not-exist-pe-4242==0.0.1\n")
    build = server.push(plugin, expect="FAILED")
    assert "this-package-does-not-exist-pe-4242" in build["log"]
    assert "BUILD FAILED" in build["log"]
    assert "returned a non-zero code" in build["error"]
    plugin_view = server.api.get("/v1/plugins/broken_req").json()
    assert plugin_view["status"] == "FAILED" and plugin_view["versions"][0]["status"] == "FAILED"


def test_code_only_version_reuses_the_requirements_layer(
    server: RunningServer, tmp_path: Any
) -> None:
    plugin = tmp_path / "layered"
    plugin.mkdir()
    (plugin / "requirements.txt").write_text(unique_requirements("six==1.16.0"))
    (plugin / "main.py").write_text(
        "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print('v1')\n"
    )
    first = server.push(plugin)
    (plugin / "main.py").write_text(
        "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print('v2')\n"
    )
    second = server.push(plugin)
    assert second["version"] == 2
    assert "Successfully installed six" in first["log"]
    assert "Successfully installed six" not in second["log"]
    pip_step = second["log"].split("pip install", 1)[1]
    assert pip_step.lstrip().split("\n", 2)[1].strip() == "---> Using cache"
    server.activate("layered", "layers")
    run = server.run_event(type="onSubmit", project_id="layers", asset_id="a", label={})
    assert run["version"] == 2
    assert contents(server.logs(run_id=run["id"]))[:-1] == [("INFO", "v2")]


@pytest.fixture(scope="module")
def tight(server_factory: ServerFactory) -> RunningServer:
    return server_factory(sandbox={"timeout_s": 4, "memory_mib": 96})


def test_sleeping_handler_times_out(tight: RunningServer) -> None:
    tight.push("sleeper")
    tight.activate("sleeper", "sleep")
    run = tight.run_event(type="onSubmit", project_id="sleep", asset_id="a", label={})
    assert run["status"] == "timed_out"
    assert run["error"] == "wall time of 4 s exceeded: killed"
    assert 4000 <= run["duration_ms"] < 8000
    logs = tight.logs(run_id=run["id"])
    assert logs[0]["content"] == "going to sleep"
    assert logs[-1] == {
        **logs[-1],
        "log_type": "SYSTEM",
        "content": "run ended timed_out: wall time of 4 s exceeded: killed",
    }


def test_memory_hog_is_oom_killed(tight: RunningServer) -> None:
    tight.push("memory_hog")
    tight.activate("memory_hog", "hog")
    run = tight.run_event(type="onSubmit", project_id="hog", asset_id="a", label={})
    assert run["status"] == "oom_killed", run
    assert run["error"] == "memory limit of 96 MiB exceeded"


def test_no_container_is_left_behind(server: RunningServer, tight: RunningServer) -> None:
    # Runs of its own, so the test stands alone: one that fails, one killed at its deadline.
    ends = [(server, "raising", "failed"), (tight, "sleeper", "timed_out")]
    for executor, plugin, status in ends:
        executor.push(plugin)
        executor.activate(plugin, "leftovers")
        run = executor.run_event(type="onSubmit", project_id="leftovers", asset_id="a", label={})
        assert run["status"] == status, run
    for executor in (server, tight):
        scope = executor.service.engine.scope
        leftovers = executor.docker_client.api.containers(
            all=True, filters={"label": f"io.plugin-executor.managed={scope}"}
        )
        assert leftovers == []
