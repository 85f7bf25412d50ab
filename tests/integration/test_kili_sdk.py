"""The real ``kili`` SDK as the management client of a real executor (GraphQL on loopback).

``Kili(api_key=<executor key>, api_endpoint=<executor>/graphql)`` uploads, activates, reads
logs and build errors, updates, lists, deactivates and deletes plugins exactly as a Kili
user's script does; events are posted over REST as the labeling platform does.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, PLUGINS, RunningServer, ServerFactory
from tests.integration.tenancy import ALL_SCOPES, assign_project, create_key, create_tenant
from tests.integration.test_webhooks import documented_verify
from tests.integration.webhook_receiver import Receiver, serve_receiver
from tests.kili_venv import made

pytestmark = pytest.mark.docker

DRIVER = Path(__file__).with_name("kili_driver.py")
ANSWER_TIMEOUT_S = 900  # one job's calls: builds on loaded cores are slow
PROJECT = "kili-project"
SINGLE_FILE = """\
import sys

from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        for n in range(3):
            self.logger.info("line %d of %s", n, asset_id)
        # as tqdm draws a progress bar (the Kili SDK's, for every batch) on stderr
        for done in range(0, 101, 25):
            sys.stderr.write(f"\\rbatch: {done:3d}%")
            sys.stderr.flush()
        sys.stderr.write("\\n")
"""


@dataclass
class KiliDriver:
    """kili_driver.py running in .venv-kili: one job (calls on one client) at a time."""

    process: subprocess.Popen[str]
    stderr: Path

    def run(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        assert self.process.poll() is None, self.said()
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        # One answer a job: nothing is buffered past it when select looks.
        answered, _, _ = select.select([self.process.stdout], [], [], ANSWER_TIMEOUT_S)
        assert answered, f"the Kili driver did not answer in {ANSWER_TIMEOUT_S} s: {self.said()}"
        line = self.process.stdout.readline()
        assert line, f"the Kili driver ended: {self.said()}"
        outcomes: list[dict[str, Any]] = json.loads(line)["outcomes"]
        return outcomes

    def said(self) -> str:
        """The end of what the driver (and the SDK) wrote on stderr."""
        return self.stderr.read_text()[-4000:]

    def close(self) -> None:
        """Ends the driver: its input ends, so does its loop."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()


@pytest.fixture(scope="module")
def kili_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KiliDriver]:
    """One driver process for the module, started at once: it imports the SDK while the
    server starts."""
    stderr = tmp_path_factory.mktemp("kili-driver") / "stderr.log"
    with stderr.open("w") as log:
        process = subprocess.Popen(
            [str(made()), str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    driver = KiliDriver(process, stderr)
    try:
        yield driver
    finally:
        driver.close()


@dataclass
class KiliSdk:
    """A Kili SDK client of one server with one key: each ``calls`` is one user's script,
    run by the module's driver in .venv-kili."""

    driver: KiliDriver
    server: RunningServer
    key: str

    def calls(self, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The outcome of each call: ``{"result": ...}`` or ``{"error": {type, message}}``."""
        return self.driver.run(
            {
                "endpoint": f"{self.server.url}{self.server.settings.api.graphql_path}",
                "api_key": self.key,
                "calls": calls,
            }
        )

    def call(self, method: str, **kwargs: Any) -> Any:
        """The result of one call, which must succeed."""
        (outcome,) = self.calls((method, kwargs))
        assert "result" in outcome, outcome
        return outcome["result"]

    def error(self, method: str, **kwargs: Any) -> dict[str, str]:
        """The error of one call, which must fail: its ``type`` and ``message``."""
        (outcome,) = self.calls((method, kwargs))
        assert "error" in outcome, outcome
        error: dict[str, str] = outcome["error"]
        return error


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as serving:
        yield serving


@pytest.fixture(scope="module")
def server(
    server_factory: ServerFactory,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: Receiver,
    kili_driver: KiliDriver,
) -> RunningServer:
    """Builds offline from an empty wheelhouse: a requirement that does not exist fails.
    Webhooks may reach the loopback receiver's port, nothing else. Made after the Kili
    driver, which imports the SDK meanwhile."""
    wheelhouse = tmp_path_factory.mktemp("empty-wheelhouse")
    running: RunningServer = server_factory(
        build_wheelhouse=wheelhouse,
        build_index_url="https://127.0.0.1:9/unreachable",
        webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
    )
    return running


@pytest.fixture
def sdk_factory(kili_driver: KiliDriver, server: RunningServer) -> Any:
    def make(key: str = OPERATOR_KEY) -> KiliSdk:
        return KiliSdk(kili_driver, server, key)

    return make


@pytest.fixture
def kili(sdk_factory: Any) -> KiliSdk:
    sdk: KiliSdk = sdk_factory()
    return sdk


def graphql(server: RunningServer, query: str, key: str = OPERATOR_KEY) -> httpx.Response:
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": query},
        headers={"Authorization": f"X-API-Key: {key}"},
        timeout=60,
    )


def plugin_names(server: RunningServer) -> list[str]:
    return [p["name"] for p in server.api.get("/v1/plugins").json()]


def test_folder_plugin_lifecycle_through_the_sdk(
    server: RunningServer, kili: KiliSdk, tmp_path: Path
) -> None:
    """upload (relative imports), activate, an event, logs with paging, update, list,
    deactivate, delete: each through the SDK, each checked on the REST API."""
    folder = str(shutil.copytree(PLUGINS / "folder_relative", tmp_path / "folder_relative"))
    uploaded, _ = kili.calls(
        ("upload_plugin", {"plugin_path": folder, "plugin_name": "kili_folder"}),
        ("activate_plugin_on_project", {"plugin_name": "kili_folder", "project_id": PROJECT}),
    )
    assert uploaded == {"result": "Plugin created successfully"}
    activations = server.api.get(f"/v1/projects/{PROJECT}/plugins").json()
    assert [(a["plugin"], a["events"]) for a in activations] == [("kili_folder", ["onReview"])]

    for asset in ("a1", "a2"):
        run = server.run_event(type="onReview", project_id=PROJECT, asset_id=asset, label={})
        assert run["status"] == "succeeded", run

    where = {"project_id": PROJECT, "plugin_name": "kili_folder"}
    everything, page = kili.calls(
        ("get_plugin_logs", where), ("get_plugin_logs", {**where, "limit": 1, "skip": 1})
    )
    logs = json.loads(everything["result"])
    rest = server.logs(project_id=PROJECT, plugin_name="kili_folder")
    assert [entry["content"] for entry in logs] == [r["content"] for r in rest]
    # Each run's last line is the executor's: how long it took (Kili shows no other record).
    assert [(e["content"].split(" in ")[0], e["logType"], e["metadata"]) for e in logs] == [
        ("1 RULES, IBAN OK: TRUE", "INFO", {"assetId": "a1", "labelId": None}),
        ("run ended succeeded", "SYSTEM", {"assetId": "a1", "labelId": None}),
        ("1 RULES, IBAN OK: TRUE", "INFO", {"assetId": "a2", "labelId": None}),
        ("run ended succeeded", "SYSTEM", {"assetId": "a2", "labelId": None}),
    ]
    assert set(logs[0]) == {
        "content",
        "createdAt",
        "logType",
        "metadata",
        "pluginName",
        "projectId",
        "runId",
    }
    assert (logs[0]["logType"], logs[0]["pluginName"], logs[0]["projectId"]) == (
        "INFO",
        "kili_folder",
        PROJECT,
    )
    assert logs[0]["runId"] == rest[0]["run_id"]
    assert logs[0]["createdAt"].endswith("Z")
    assert json.loads(page["result"]) == logs[1:2]

    # Changed files: the same ones would reuse v1.
    with (Path(folder) / "main.py").open("a") as main:
        main.write("\n# v2\n")
    updated, listed, *_ = kili.calls(
        ("update_plugin", {"plugin_path": folder, "plugin_name": "kili_folder"}),
        ("list_plugins", {}),
        ("deactivate_plugin_on_project", {"plugin_name": "kili_folder", "project_id": PROJECT}),
    )
    assert updated == {"result": "Plugin updated successfully"}
    versions = server.api.get("/v1/plugins/kili_folder").json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "ACTIVE"), (2, "ACTIVE")]
    assert [(p["name"], p["projectIds"]) for p in listed["result"]] == [("kili_folder", [PROJECT])]
    assert server.api.get(f"/v1/projects/{PROJECT}/plugins").json() == []

    kili.call("delete_plugin", plugin_name="kili_folder")
    assert "kili_folder" not in plugin_names(server)
    audit = server.api.get("/v1/audit").json()
    actions = {e["action"] for e in audit if e["target"] == "kili_folder"}
    assert {"plugin.upload", "plugin.activate", "plugin.deactivate", "plugin.delete"} <= actions


def test_single_file_plugin_through_the_sdk(
    server: RunningServer, kili: KiliSdk, tmp_path: Path
) -> None:
    path = tmp_path / "kili_single.py"
    path.write_text(SINGLE_FILE)
    project = "single-project"
    kili.calls(
        ("upload_plugin", {"plugin_path": str(path), "plugin_name": "kili_single"}),
        ("activate_plugin_on_project", {"plugin_name": "kili_single", "project_id": project}),
    )
    run = server.run_event(type="onSubmit", project_id=project, asset_id="s1", label={})
    assert run["status"] == "succeeded", run
    logs = json.loads(kili.call("get_plugin_logs", project_id=project, plugin_name="kili_single"))
    assert [(e["logType"], e["content"]) for e in logs] == [
        *[("INFO", f"line {n} of s1") for n in range(3)],
        ("INFO", "batch: 100%"),  # the bar's final state, not each redraw, not a WARNING
        ("SYSTEM", f"run ended succeeded in {run['duration_ms']} ms"),
    ]


def test_kilis_guide_name_through_the_sdk(
    server: RunningServer, kili: KiliSdk, tmp_path: Path
) -> None:
    """Kili's plugin guide names its plugin "My first kili plugin": upload, activate, logs,
    deactivate through the SDK; a name equal to it but for case is refused naming it."""
    name, project = "My first kili plugin", "guide-project"
    path = tmp_path / "guide.py"
    path.write_text(SINGLE_FILE)
    uploaded, _ = kili.calls(
        ("upload_plugin", {"plugin_path": str(path), "plugin_name": name}),
        ("activate_plugin_on_project", {"plugin_name": name, "project_id": project}),
    )
    assert uploaded == {"result": "Plugin created successfully"}
    run = server.run_event(type="onSubmit", project_id=project, asset_id="g1", label={})
    assert (run["status"], run["plugin"]) == ("succeeded", name)
    logs = json.loads(kili.call("get_plugin_logs", project_id=project, plugin_name=name))
    assert {(e["pluginName"], e["projectId"]) for e in logs} == {(name, project)}
    twin = kili.error("upload_plugin", plugin_path=str(path), plugin_name="MY FIRST KILI PLUGIN")
    assert twin["type"] == "GraphQLError"
    assert f"is taken by the plugin {name!r}" in twin["message"]
    kili.call("deactivate_plugin_on_project", plugin_name=name, project_id=project)
    assert server.api.get(f"/v1/projects/{project}/plugins").json() == []
    assert name in plugin_names(server) and "MY FIRST KILI PLUGIN" not in plugin_names(server)


def test_build_errors_of_a_failed_build_through_the_sdk(
    server: RunningServer, kili: KiliSdk, tmp_path: Path
) -> None:
    folder = tmp_path / "kili_broken"
    folder.mkdir()
    (folder / "main.py").write_text(SINGLE_FILE)
    (folder / "requirements.txt").write_text("no-such-package-kili-test==1.0\n")
    upload, listed, paged = kili.calls(
        ("upload_plugin", {"plugin_path": str(folder), "plugin_name": "kili_broken"}),
        ("get_plugin_build_errors", {"plugin_name": "kili_broken"}),
        ("get_plugin_build_errors", {"plugin_name": "kili_broken", "skip": 1, "limit": 1}),
    )
    assert upload["error"]["type"] == "PluginCreationError"
    assert "kili.get_plugin_build_errors" in upload["error"]["message"]
    errors = json.loads(listed["result"])
    text = "\n".join(e["content"] for e in errors)
    assert "No matching distribution found for no-such-package-kili-test==1.0" in text
    build = server.api.get("/v1/plugins/kili_broken/versions/1/build-log").json()
    assert build["status"] == "FAILED"
    assert errors[-1]["content"] == build["error"]
    assert {(e["logType"], e["pluginName"]) for e in errors} == {("ERROR", "kili_broken")}
    assert json.loads(paged["result"]) == [errors[1]]


def test_create_plugin_with_a_taken_name_is_refused_naming_update_plugin(
    server: RunningServer, kili: KiliSdk, tmp_path: Path
) -> None:
    path = tmp_path / "kili_taken.py"
    path.write_text(SINGLE_FILE)
    kili.call("upload_plugin", plugin_path=str(path), plugin_name="kili_taken")
    versions_before = server.api.get("/v1/plugins/kili_taken").json()["versions"]
    error = kili.error("upload_plugin", plugin_path=str(path), plugin_name="kili_taken")
    assert error["type"] == "GraphQLError"
    assert "an entity Plugin already exists with value 'kili_taken'" in error["message"]
    assert "kili.update_plugin" in error["message"]
    assert server.api.get("/v1/plugins/kili_taken").json()["versions"] == versions_before


def test_operation_not_implemented_is_named(server: RunningServer) -> None:
    before = plugin_names(server)
    response = graphql(server, 'mutation { data: publishPlugin(name: "x") }')
    assert response.status_code == 400
    first = response.json()["errors"][0]
    assert first["message"].startswith("Kili operation 'publishPlugin' is not implemented")
    assert "createPlugin" in first["message"] and "createWebhook" in first["message"]
    assert first["extensions"] == {"code": "operation_not_implemented"}
    assert plugin_names(server) == before


def test_create_webhook_delivers_signed_events_and_update_webhook_moves_them(
    server: RunningServer, kili: KiliSdk, receiver: Receiver
) -> None:
    project, header = "kili-hooks", "Bearer kili-hook-0123456789"
    first_url = f"http://127.0.0.1:{receiver.port}/kili-hook"
    created, activated = kili.calls(
        (
            "create_webhook",
            {"webhook_url": first_url, "plugin_name": "kili_hook", "header": header},
        ),
        ("activate_plugin_on_project", {"plugin_name": "kili_hook", "project_id": project}),
    )
    secret = re.search(r"signing secret (whsec_\S+)", created["result"])
    assert secret is not None, created
    assert activated == {"result": "kili_hook"}
    label = {"id": "label-1", "jsonResponse": {}}
    run = server.run_event(type="onSubmit", project_id=project, asset_id="a-1", label=label)
    assert (run["status"], run["http_status"]) == ("succeeded", 200), run
    [got] = receiver.hits("/kili-hook")
    assert got.headers["Authorization"] == header
    assert documented_verify()(secret.group(1), got.headers["X-Executor-Signature"], got.body)
    assert json.loads(got.body)["logPayload"]["pluginName"] == "kili_hook"

    moved = f"http://127.0.0.1:{receiver.port}/kili-hook-moved"
    updated = kili.call(
        "update_webhook", new_webhook_url=moved, plugin_name="kili_hook", new_header=header
    )
    assert updated == "webhook 'kili_hook' updated (v2)"
    run = server.run_event(type="onSubmit", project_id=project, asset_id="a-2", label=label)
    assert run["status"] == "succeeded", run
    assert len(receiver.hits("/kili-hook")) == 1 and len(receiver.hits("/kili-hook-moved")) == 1

    before = plugin_names(server)
    error = kili.error(
        "create_webhook", webhook_url="http://169.254.169.254/latest", plugin_name="metadata"
    )
    assert error["type"] == "GraphQLError"
    assert "169.254.169.254" in error["message"]
    assert plugin_names(server) == before


def test_deep_and_huge_queries_are_refused(server: RunningServer) -> None:
    before = plugin_names(server)
    deep = "query { " + "listPlugins { " * 1000 + "id" + " }" * 1000 + " }"
    response = graphql(server, deep)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "query_too_deep"}
    assert error["message"].startswith("the query is nested 1001 levels deep; at most 32")

    huge = "query { listPlugins { id } }" + " " * (1024 * 1024)
    response = graphql(server, huge)
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert plugin_names(server) == before


def test_wrong_key_and_another_tenants_plugin(server: RunningServer, sdk_factory: Any) -> None:
    wrong = sdk_factory("pe_key_not-a-key").error("list_plugins")
    assert wrong == {
        "type": "GraphQLError",
        "message": 'GraphQL error: "unknown API key: check the key you were given"',
    }

    create_tenant(server, "kili-acme")
    assign_project(server, "kili-acme", "acme-project")
    acme: KiliSdk = sdk_factory(create_key(server, "kili-acme", ALL_SCOPES)["key"])
    reader_key = create_key(server, "kili-acme", ["plugins:read"])["key"]
    response = server.api.post(
        "/v1/plugins", data={"name": "kili_default"}, files={"file": ("main.py", SINGLE_FILE)}
    )
    assert response.status_code == 202, response.text
    target = {"plugin_name": "kili_default", "project_id": "acme-project"}
    activate, delete, listed = acme.calls(
        ("activate_plugin_on_project", target),
        ("delete_plugin", {"plugin_name": "kili_default"}),
        ("list_plugins", {}),
    )
    for outcome in (activate, delete):
        assert "no plugin named 'kili_default'" in outcome["error"]["message"]
    assert listed == {"result": []}
    assert "kili_default" in plugin_names(server)

    missing = sdk_factory(reader_key).error("delete_plugin", plugin_name="kili_default")
    assert "lacks the scope 'plugins:write'" in missing["message"]
    response = graphql(server, 'mutation { deletePlugin(where: {pluginName: "x"}) }', reader_key)
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "missing_scope"
    assert "kili_default" in plugin_names(server)


def test_upload_url_needs_a_key_and_a_known_ticket(server: RunningServer) -> None:
    url = f"{server.url}/graphql/upload?ticket=made-up"
    response = httpx.put(url, content=b"PK")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    response = httpx.put(
        url, content=b"PK", headers={"Authorization": f"X-API-Key: {OPERATOR_KEY}"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "unknown or expired" in response.json()["message"]


def test_no_key_is_a_401_the_sdk_reads_as_a_graphql_error(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/graphql", json={"query": "{ listPlugins { id } }"})
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "not_authenticated"
    assert body["errors"] == [{"message": body["message"], "extensions": {"code": body["code"]}}]
    assert body["message"].startswith("missing API key: send 'Authorization: X-API-Key: <key>'")


def test_an_upload_the_static_check_refuses_is_a_graphql_error_naming_the_line(
    server: RunningServer, kili: KiliSdk, tmp_path: Path
) -> None:
    folder = tmp_path / "kili_option"
    folder.mkdir()
    (folder / "main.py").write_text(SINGLE_FILE)
    (folder / "requirements.txt").write_text("six==1.16.0\n--index-url https://example.test\n")
    error = kili.error("upload_plugin", plugin_path=str(folder), plugin_name="kili_option")
    assert error["type"] == "GraphQLError"
    assert "requirements.txt, line 2: the option '--index-url' is not allowed" in error["message"]
    assert "kili_option" not in plugin_names(server)
