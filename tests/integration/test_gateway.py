"""The gateway end to end: real plugin containers, the executor, and a platform stand-in.

``platform_standin`` is a small HTTP app on loopback standing in for the labeling platform's
REST API and for a Kili-compatible GraphQL API; it records what reaches it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from executor.engine import INVOCATION_LABEL
from executor.settings import PlatformTarget
from tests.conftest import PLUGINS, RunningServer, ServerFactory, free_port
from tests.e2e.test_cli import cli
from tests.platform_standin import PlatformStandIn, UnixHTTPConnection, platform_standin

CREDENTIAL = "operator-credential-5b9e"
KILI_CREDENTIAL = "kili-operator-key-2c41"
MAX_CALLS = 6
LABEL = {"id": "label-7", "jsonResponse": {"IBAN": {"text": "DE89"}}}


@dataclass
class World:
    server: RunningServer
    platform: PlatformStandIn
    kili_version: int

    def gateway(self, method: str, target: str, token: str) -> tuple[int, dict[str, Any]]:
        """Call the gateway socket directly, as a process holding ``token`` would."""
        connection = UnixHTTPConnection(str(self.server.service.gateway.socket_path))
        try:
            connection.request(method, target, headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def leaked_token(self, project: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.platform.bodies_with("leaked_token"):
                if body["project"] == project:
                    return str(body["leaked_token"])
            time.sleep(0.1)
        raise AssertionError(f"no token arrived from a run on {project}")

    def log_lines(self, run_id: str) -> list[str]:
        return [f"{r['log_type']} {r['content']}" for r in self.server.logs(run_id=run_id)]

    def seen(self, path_prefix: str) -> list[Any]:
        return [r for r in self.platform.requests if r.path.startswith(path_prefix)]


@pytest.fixture(scope="module")
def world(server_factory: ServerFactory) -> Iterator[World]:
    with platform_standin() as platform:
        server: RunningServer = server_factory(
            platform_api_url=platform.url + "/api/projects/{project_id}",
            platform_credential=CREDENTIAL,
            platform_projects={
                "kili-proj": PlatformTarget(
                    url=platform.url + "/api/label/v2", credential=KILI_CREDENTIAL
                ),
                "kili-lazy": PlatformTarget(
                    url=platform.url + "/api/lazy/v2", credential=KILI_CREDENTIAL
                ),
                "down-proj": PlatformTarget(url=f"http://127.0.0.1:{free_port()}/api"),
            },
            gateway_max_calls=MAX_CALLS,
        )
        # The Kili SDK plugin's pip build is the slow one: start it first, wait for it last.
        response = server.api.post(
            "/v1/plugins",
            data={"name": "gateway_kili"},
            files={"file": ("gateway_kili.tar.gz", _pack("gateway_kili"))},
        )
        assert response.status_code == 202, response.text
        for name, project in [
            ("gateway_rest", "p-a"),
            ("gateway_holder", "p-b"),
            ("gateway_cap", "p-c"),
            ("gateway_down", "down-proj"),
            ("kili_lazy", "kili-lazy"),
        ]:
            server.push(name)
            server.activate(name, project)
        yield World(server, platform, response.json()["version"])


def _pack(name: str) -> bytes:
    from executor.intake.upload import pack_directory

    return pack_directory(PLUGINS / name)


def test_plugin_reaches_the_platform_with_the_operator_credential_only(world: World) -> None:
    run = world.server.run_event(type="onSubmit", project_id="p-a", asset_id="asset-1", label=LABEL)
    assert run["status"] == "succeeded", world.log_lines(run["id"])
    token = world.leaked_token("p-a")

    issue, patch, leak = world.seen("/api/projects/p-a/")
    assert (issue.method, issue.path) == ("POST", "/api/projects/p-a/assets/asset-1/issues")
    assert issue.json() == {"text": "IBAN must start with FR"}
    assert (patch.method, patch.path) == ("PATCH", "/api/projects/p-a/assets/asset-1/metadata")
    assert patch.json() == {"json_metadata": {"accuracy": 0.5}}
    for request in (issue, patch, leak):
        assert request.headers["authorization"] == f"X-API-Key: {CREDENTIAL}"
        assert request.headers["x-plugin-invocation"] == run["id"]
        assert token not in json.dumps(request.headers)
    assert world.seen("/admin") == [] and world.seen("/api/projects/p-b") == []

    # Method, path, status, bytes and duration of every call are on the invocation record.
    calls = world.server.api.get(f"/v1/invocations/{run['id']}").json()["gateway_calls"]
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("POST", "/api/projects/p-a/assets/asset-1/issues", 201),
        ("PATCH", "/api/projects/p-a/assets/asset-1/metadata", 200),
        ("POST", "/api/projects/p-a/leak", 200),
        ("GET", "/admin/users", 403),
        ("GET", "/api/projects/p-b/assets", 403),
        ("GET", "/api/projects/p-a/%2e%2e/p-b/assets", 403),
        ("GET", "http://evil.example/api/projects/p-a/assets", 403),
    ]
    assert calls[0]["request_bytes"] == len(issue.body) and calls[0]["response_bytes"] > 0
    assert all(c["duration_ms"] >= 0 for c in calls)

    # ... and in `plugin-executor status`.
    shown = cli(world.server, "status", run["id"]).stdout
    assert "Platform API calls" in shown
    assert "/api/projects/p-a/assets/asset-1/issues" in shown and "201" in shown

    # Paths outside the project's base: refused inside the container too (raw targets).
    logs = world.server.logs(run_id=run["id"])
    statuses = json.loads(next(r["content"] for r in logs if r["content"].startswith("{")))
    assert set(statuses["statuses"].values()) == {403}
    # The socket folder is the one host mount, and it is read-only.
    assert statuses["mount"] == "Read-only file system"
    assert not (world.server.service.gateway.socket_dir / "planted").exists()

    # The token the plugin printed three ways is stored as ***, never in clear.
    contents = [r["content"] for r in logs]
    assert "my token is ***" in contents
    assert "token again: ***" in contents
    assert "raw stderr ***" in contents
    assert not any(token in c for c in contents)
    assert token not in json.dumps(world.server.api.get(f"/v1/invocations/{run['id']}").json())

    # The container has exited: the same token replayed now is refused.
    status, body = world.gateway("GET", "/api/projects/p-a/assets", token)
    assert (status, body["code"]) == (401, "token_revoked")


def test_token_of_another_run_cannot_reach_a_project_it_does_not_own(world: World) -> None:
    accepted = world.server.post_event(
        type="onSubmit", project_id="p-b", asset_id="asset-2", label=LABEL
    )
    token = world.leaked_token("p-b")  # the run is now waiting in GET .../wait

    # While it runs: the token is nowhere in the container's config (env, labels, command),
    # and the gateway folder is its only mount, read-only.
    (container,) = world.server.docker_client.containers.list(
        filters={"label": f"{INVOCATION_LABEL}={accepted['invocations'][0]}"}
    )
    assert token not in json.dumps(container.attrs)
    mounts = [
        (m["Type"], m["Source"], m["Destination"], m["RW"]) for m in container.attrs["Mounts"]
    ]
    socket_dir = str(world.server.service.gateway.socket_dir)
    assert mounts == [("bind", socket_dir, "/run/executor", False)]

    assert world.gateway("GET", "/api/projects/p-a/assets", token)[0] == 403
    assert world.gateway("GET", "/api/projects/p-b/%2e%2e/p-a/assets", token)[0] == 403
    status, body = world.gateway("GET", "/api/projects/p-b/assets", token)
    assert (status, body["path"]) == (200, "/api/projects/p-b/assets")  # the token is live
    assert [r.path for r in world.seen("/api/projects/p-a/") if "p-b" in r.path] == []

    world.platform.release()
    run = world.server.wait_run(accepted["invocations"][0])
    assert run["status"] == "succeeded", world.log_lines(run["id"])
    # Recorded when answered: the held call last.
    assert [(c["path"], c["status"]) for c in run["gateway_calls"]] == [
        ("/api/projects/p-b/leak", 200),
        ("/api/projects/p-a/assets", 403),
        ("/api/projects/p-b/%2e%2e/p-a/assets", 403),
        ("/api/projects/p-b/assets", 200),
        ("/api/projects/p-b/wait", 200),
    ]
    assert world.gateway("GET", "/api/projects/p-b/assets", token)[0] == 401


def test_calls_past_the_per_invocation_cap_get_429(world: World) -> None:
    run = world.server.run_event(type="onSubmit", project_id="p-c", asset_id="a", label=LABEL)

    assert run["status"] == "succeeded", world.log_lines(run["id"])
    stdout = [r["content"] for r in world.server.logs(run_id=run["id"]) if r["stream"] == "stdout"]
    assert json.loads(stdout[0]) == [200] * MAX_CALLS + [429, 429]
    assert len(world.seen("/api/projects/p-c/")) == MAX_CALLS
    assert [c["status"] for c in run["gateway_calls"]] == [200] * MAX_CALLS + [429, 429]
    metrics = world.server.api.get("/metrics").text
    assert 'executor_gateway_calls_total{status="429"} 2.0' in metrics


def test_platform_down_gives_the_plugin_a_clear_502_in_its_logs(world: World) -> None:
    run = world.server.run_event(
        type="onSubmit", project_id="down-proj", asset_id="asset-3", label=LABEL
    )

    assert (run["status"], run["exit_code"]) == ("failed", 1), world.log_lines(run["id"])
    (call,) = run["gateway_calls"]
    assert (call["method"], call["path"], call["status"]) == ("GET", "/api/assets/asset-3", 502)
    logs = world.server.logs(run_id=run["id"])
    errors = [r["content"] for r in logs if r["log_type"] == "ERROR"]
    assert any(
        "GET assets/asset-3 failed: HTTP 502" in e
        and '"code": "platform_unavailable"' in e
        and "the platform API could not be reached for GET /api/assets/asset-3" in e
        for e in errors
    ), errors


def test_kili_sdk_plugin_reaches_a_kili_compatible_api(world: World) -> None:
    build = world.server.wait_build("gateway_kili", world.kili_version)
    assert build["status"] == "ACTIVE", build["log"]
    world.server.activate("gateway_kili", "kili-proj")

    run = world.server.run_event(
        type="onSubmit", project_id="kili-proj", asset_id="asset-9", label=LABEL
    )

    assert run["status"] == "succeeded", world.log_lines(run["id"])
    graphql = world.seen("/api/label/v2/")
    assert [r.path for r in graphql] == ["/api/label/v2/graphql"] * 2
    for request in graphql:
        assert request.method == "POST"
        assert request.headers["authorization"] == f"X-API-Key: {KILI_CREDENTIAL}"
    create, send_back = (r.json() for r in graphql)
    assert "createIssues(" in create["query"]
    assert create["variables"]["where"] == {"project": {"id": "kili-proj"}}
    (issue,) = create["variables"]["issues"]
    assert (issue["labelID"], issue["text"], issue["type"]) == (
        "label-7",
        "IBAN must start with FR",
        "ISSUE",
    )
    assert "sendAssetsBackToQueue(" in send_back["query"]
    assert send_back["variables"] == {"where": {"idIn": ["asset-9"]}}
    logs = world.server.logs(run_id=run["id"])
    infos = [r["content"] for r in logs if r["log_type"] == "INFO"]
    assert any(
        c.startswith("issues [{'id': 'issue-0'}]; sent back [{'assetId': 'asset-9'") for c in infos
    )
    assert [(c["path"], c["status"]) for c in run["gateway_calls"]] == [
        ("/api/label/v2/graphql", 200),
        ("/api/label/v2/graphql", 200),
    ]


def test_self_kili_is_built_on_first_use_when_the_plugin_does_not_import_the_sdk(
    world: World,
) -> None:
    """Importing the SDK costs about a second: a plugin pays it only if it uses self.kili."""
    run = world.server.run_event(
        type="onSubmit", project_id="kili-lazy", asset_id="asset-10", label=LABEL
    )

    assert run["status"] == "succeeded", world.log_lines(run["id"])
    infos = [r["content"] for r in world.server.logs(run_id=run["id"]) if r["log_type"] == "INFO"]
    assert "SDK imported before first use: False" in infos
    assert "issues [{'id': 'issue-0'}]" in infos
    (create,) = (r.json() for r in world.seen("/api/lazy/v2/"))
    assert "createIssues(" in create["query"]
    assert create["variables"]["where"] == {"project": {"id": "kili-lazy"}}
