"""A plugin cannot choose to be retried (issue 22): however it ends its own process, the run
is its failure; only what the Docker Engine recorded (docker stop, docker kill) is a stop
from outside. Under runc and runsc, with a platform stand-in counting the plugin's calls.

The plugin (tests/plugins/self_ending) calls the platform once, then ends itself the way
the event's label says.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from executor.engine import INVOCATION_LABEL
from tests.conftest import PLUGINS, RunningServer, ServerFactory
from tests.platform_standin import PlatformStandIn, platform_standin
from tests.security.attacks import RUNTIMES

PROJECT = "self-ended"
RETRIED_PROJECT = "self-ended-retried"  # its activation allows one retry of a plugin failure
NOT_STOPPED = "from inside the container: neither the executor nor the Docker Engine stopped it"
ERRORS = {
    137: f"plugin exited with code 137 (signal 9 (SIGKILL) or exit(137)) {NOT_STOPPED}",
    143: f"plugin exited with code 143 (signal 15 (SIGTERM) or exit(143)) {NOT_STOPPED}",
}


@dataclass
class World:
    server: RunningServer
    platform: PlatformStandIn

    def calls_of(self, run_id: str) -> list[tuple[str, str]]:
        with self.platform.lock:
            return [
                (r.method, r.path)
                for r in self.platform.requests
                if r.headers.get("x-plugin-invocation") == run_id
            ]

    def run(self, way: str, asset_id: str) -> dict[str, object]:
        return self.server.run_event(
            type="onSubmit", project_id=PROJECT, asset_id=asset_id, label={"way": way}
        )

    def log_lines(self, run_id: str) -> list[str]:
        return [f"{r['log_type']} {r['content']}" for r in self.server.logs(run_id=run_id)]


@pytest.fixture(scope="module", params=RUNTIMES)
def world(request: pytest.FixtureRequest, server_factory: ServerFactory) -> Iterator[World]:
    with platform_standin() as platform:
        server = server_factory(
            platform_api_url=platform.url + "/api/projects/{project_id}",
            sandbox={"oci_runtime": request.param, "timeout_s": 90},
            retry_base_s=0.2,
            retry_max_s=0.5,
        )
        server.push(PLUGINS / "self_ending", "self_ending")
        server.activate("self_ending", PROJECT)
        placed = server.api.put(
            f"/v1/projects/{RETRIED_PROJECT}/plugins/self_ending", json={"max_retries": 1}
        )
        assert placed.status_code == 200 and placed.json()["max_retries"] == 1, placed.text
        yield World(server, platform)


@pytest.mark.parametrize(
    ("way", "exit_code"),
    [("exit137", 137), ("exit143", 143), ("sigkill_self", 137), ("sigterm_init", 143)],
)
def test_a_plugin_that_ends_itself_fails_once_and_calls_the_platform_once(
    world: World, way: str, exit_code: int
) -> None:
    run = world.run(way, f"asset-{way}")

    assert (run["status"], run["exit_code"], run["error"]) == (
        "failed",
        exit_code,
        ERRORS[exit_code],
    ), world.log_lines(str(run["id"]))
    assert (run["attempt"], run["attempts"]) == (1, []), run["attempts"]
    assert world.calls_of(str(run["id"])) == [
        ("POST", f"/api/projects/{PROJECT}/assets/asset-{way}/issues")
    ]


def test_with_max_retries_a_plugin_that_ends_itself_runs_max_retries_plus_one_times(
    world: World,
) -> None:
    run = world.server.run_event(
        type="onSubmit",
        project_id=RETRIED_PROJECT,
        asset_id="asset-retried",
        label={"way": "sigkill_self"},
    )

    reason = f"failed: {ERRORS[137]}"
    assert (run["status"], run["attempt"], run["error"]) == (
        "dead",
        2,
        f"gave up after 2 attempts: {reason}",
    ), world.log_lines(str(run["id"]))
    assert [a["reason"] for a in run["attempts"]] == [reason, reason]
    issues = ("POST", f"/api/projects/{RETRIED_PROJECT}/assets/asset-retried/issues")
    assert world.calls_of(str(run["id"])) == [issues, issues]


def test_output_written_before_os_exit_is_kept(world: World) -> None:
    run = world.run("output", "asset-output")

    assert (run["status"], run["exit_code"]) == ("failed", 3), world.log_lines(str(run["id"]))
    lines = world.log_lines(str(run["id"]))
    for line in ("INFO a printed line", "INFO raw line", "INFO a partial line"):
        assert line in lines, lines


def test_a_handler_that_closed_fds_1_and_2_succeeds(world: World) -> None:
    run = world.run("close_fds", "asset-close")

    assert (run["status"], run["error"]) == ("succeeded", None), world.log_lines(str(run["id"]))
    assert "INFO closing fds 1 and 2" in world.log_lines(str(run["id"]))


def _waiting_container(world: World, run_id: str, attempt: int) -> str:
    """The running container of ``run_id`` once its ``attempt``-th run waits on the platform."""
    deadline = time.monotonic() + 120
    while len([c for c in world.calls_of(run_id) if c[1].endswith("/wait")]) < attempt:
        assert time.monotonic() < deadline, f"attempt {attempt} of {run_id} did not start"
        time.sleep(0.1)
    client = world.server.docker_client
    found = client.api.containers(filters={"label": f"{INVOCATION_LABEL}={run_id}"})
    assert len(found) == 1, found
    return str(found[0]["Id"])


def test_docker_stop_and_docker_kill_are_stops_from_outside_and_retried(world: World) -> None:
    accepted = world.server.post_event(
        type="onSubmit", project_id=PROJECT, asset_id="asset-wait", label={"way": "wait"}
    )
    run_id = str(accepted["invocations"][0])
    client: docker.DockerClient = world.server.docker_client

    client.api.stop(_waiting_container(world, run_id, 1), timeout=60)
    client.api.kill(_waiting_container(world, run_id, 2))
    world.platform.release()
    run = world.server.wait_run(run_id)

    assert run["status"] == "succeeded", world.log_lines(run_id)
    assert len(run["attempts"]) == 2, run["attempts"]
    stopped, killed = (a["reason"] for a in run["attempts"])
    outside = "infrastructure: container stopped from outside the executor"
    assert stopped.startswith(f"{outside} (exit 143): "), stopped
    assert "the Docker Engine was asked to send 15 (SIGTERM)" in stopped
    assert killed.startswith(f"{outside} (exit 137): "), killed
    assert "the Docker Engine was asked to send 9 (SIGKILL)" in killed
