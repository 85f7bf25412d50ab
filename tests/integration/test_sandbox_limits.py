"""Per-plugin sandbox limits over the API and the CLI, and what runs get from them; an
engine error ends a run as the executor's failure."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory

CLI = [os.path.join(os.path.dirname(sys.executable), "plugin-executor")]


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    running = server_factory(sandbox={"timeout_s": 20})
    running.push("sleeper")
    running.activate("sleeper", "limits-project")
    return running


def limits(server: RunningServer) -> dict[str, Any]:
    response = server.api.get("/v1/plugins/sleeper/limits")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_defaults_are_the_operator_profile(server: RunningServer) -> None:
    body = limits(server)
    assert body["overrides"] == {f: None for f in body["effective"]}
    assert body["effective"] == body["maxima"]
    assert body["maxima"]["timeout_s"] == 20
    assert body["maxima"]["memory_mib"] == 512


@pytest.mark.parametrize(
    ("field", "value", "maximum"),
    [("memory_mib", 1024, 512), ("timeout_s", 21, 20), ("cpus", 2, 1), ("pids", 4096, 128)],
)
def test_above_maximum_is_refused_and_nothing_changes(
    server: RunningServer, field: str, value: float, maximum: float
) -> None:
    before = limits(server)
    response = server.api.put("/v1/plugins/sleeper/limits", json={"pids": 64, field: value})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "limit_exceeded"
    assert body["field"] == field
    assert body["maximum"] == maximum
    assert f"{field}={value} is above the operator's maximum of {maximum}" in body["message"]
    assert limits(server) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"memory_mib": 4}, "body.memory_mib"),
        ({"swap": 1}, "body.swap"),
        ({"cpus": 0}, "body.cpus"),
    ],
)
def test_invalid_limits_are_refused(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    before = limits(server)
    response = server.api.put("/v1/plugins/sleeper/limits", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert response.json()["errors"][0]["field"] == field
    assert limits(server) == before


def test_limits_of_unknown_plugin(server: RunningServer) -> None:
    response = server.api.put("/v1/plugins/nope/limits", json={"pids": 64})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_tightened_wall_time_applies_to_the_next_run(server: RunningServer) -> None:
    response = server.api.put("/v1/plugins/sleeper/limits", json={"timeout_s": 2})
    assert response.status_code == 200, response.text
    assert response.json()["effective"]["timeout_s"] == 2
    run = server.run_event(type="onSubmit", project_id="limits-project", asset_id="a", label={})
    assert run["status"] == "timed_out"
    assert run["error"] == "wall time of 2 s exceeded: killed"
    assert run["duration_ms"] < 15_000
    cleared = server.api.put("/v1/plugins/sleeper/limits", json={})
    assert cleared.json()["overrides"]["timeout_s"] is None
    assert cleared.json()["effective"]["timeout_s"] == 20


def test_envelope_over_the_plugin_cap_fails_the_run(server: RunningServer) -> None:
    response = server.api.put("/v1/plugins/sleeper/limits", json={"envelope_cap_bytes": 2048})
    assert response.status_code == 200, response.text
    try:
        run = server.run_event(
            type="onSubmit", project_id="limits-project", asset_id="a", label={"big": "x" * 4096}
        )
    finally:
        server.api.put("/v1/plugins/sleeper/limits", json={})
    assert run["status"] == "failed"
    assert run["error"].startswith("envelope_too_large: the event makes an envelope of ")
    assert run["error"].endswith("over the cap of 2048 bytes; send a smaller label or payload")
    system = [r["content"] for r in server.logs(run_id=run["id"]) if r["log_type"] == "SYSTEM"]
    assert system == [run["error"]]


def cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXECUTOR_URL": server.url, "EXECUTOR_API_KEY": OPERATOR_KEY}
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_sets_shows_and_clears_limits(server: RunningServer) -> None:
    done = cli(server, "limits", "sleeper", "--memory-mib", "128", "--timeout-s", "5")
    assert done.returncode == 0, done.stderr
    assert "Sandbox limits of sleeper" in done.stdout
    assert limits(server)["overrides"]["memory_mib"] == 128
    refused = cli(server, "limits", "sleeper", "--memory-mib", "4096")
    assert refused.returncode == 1
    assert "memory_mib=4096 is above the operator's maximum of 512" in refused.stderr
    assert limits(server)["overrides"]["memory_mib"] == 128
    assert cli(server, "limits", "sleeper", "--clear").returncode == 0
    assert limits(server)["overrides"]["memory_mib"] is None


def test_engine_error_ends_the_run_as_an_infrastructure_failure(
    server_factory: ServerFactory,
) -> None:
    """An engine error (a CPU quota the OCI runtime refuses at start: below 0.01 cores) is the
    executor's failure, not the plugin's: retried, then recorded ``dead`` with the engine's
    message. (The build's import check runs with the operator's profile: it passes.)"""
    broken = server_factory(infra_retry_budget_s=1, retry_base_s=0.1)
    broken.push("sleeper")
    response = broken.api.put("/v1/plugins/sleeper/limits", json={"cpus": 0.001})
    assert response.status_code == 200, response.text
    broken.activate("sleeper", "crash-project")
    run = broken.run_event(type="onSubmit", project_id="crash-project", asset_id="a", label={})
    assert run["status"] == "dead"
    assert run["error"].startswith(f"gave up after {run['attempt']} attempts over ")
    assert (
        " s of infrastructure failures, the last of the Docker Engine: Docker Engine error "
        "while starting the plugin container"
    ) in run["error"]
    assert run["error"].endswith(
        "infrastructure failures are retried for EXECUTOR_INFRA_RETRY_BUDGET_S (1 s) from the "
        "first: raise it to wait out longer outages"
    )
    system = [r["content"] for r in broken.logs(run_id=run["id"]) if r["log_type"] == "SYSTEM"]
    assert system[-1].startswith("the executor could not run the plugin: Docker Engine error")
    assert system[-1].endswith(" used up the 1 s budget; giving up")
