"""The real ``kili`` SDK as the management client of a real executor (GraphQL on loopback).

``Kili(api_key=<executor key>, api_endpoint=<executor>/graphql)`` uploads, activates, reads
logs and build errors, updates, lists, deactivates and deletes plugins exactly as a Kili
user's script does; events are posted over REST as the labeling platform does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kili.client import Kili  # type: ignore[import-untyped]
from kili.exceptions import GraphQLError  # type: ignore[import-untyped]
from kili.services.plugins.exceptions import PluginCreationError  # type: ignore[import-untyped]

from tests.conftest import OPERATOR_KEY, PLUGINS, RunningServer, ServerFactory
from tests.integration.tenancy import ALL_SCOPES, assign_project, create_key, create_tenant

pytestmark = pytest.mark.docker

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


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Builds offline from an empty wheelhouse: a requirement that does not exist fails."""
    wheelhouse = tmp_path_factory.mktemp("empty-wheelhouse")
    return server_factory(
        build_wheelhouse=wheelhouse, build_index_url="https://127.0.0.1:9/unreachable"
    )


@pytest.fixture(scope="module")
def kili_env() -> Iterator[None]:
    """The SDK checks its key against Kili's cloud unless told not to."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KILI_SDK_SKIP_CHECKS", "1")
        yield


def kili_client(server: RunningServer, key: str = OPERATOR_KEY) -> Any:
    return Kili(api_key=key, api_endpoint=f"{server.url}{server.settings.graphql_path}")


@pytest.fixture(scope="module")
def kili(server: RunningServer, kili_env: None) -> Any:
    return kili_client(server)


def graphql(server: RunningServer, query: str, key: str = OPERATOR_KEY) -> httpx.Response:
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": query},
        headers={"Authorization": f"X-API-Key: {key}"},
        timeout=60,
    )


def plugin_names(server: RunningServer) -> list[str]:
    return [p["name"] for p in server.api.get("/v1/plugins").json()]


def test_folder_plugin_lifecycle_through_the_sdk(server: RunningServer, kili: Any) -> None:
    """upload (relative imports), activate, an event, logs with paging, update, list,
    deactivate, delete: each through the SDK, each checked on the REST API."""
    message = kili.upload_plugin(
        plugin_path=str(PLUGINS / "folder_relative"), plugin_name="kili_folder"
    )
    assert message == "Plugin created successfully"
    kili.activate_plugin_on_project(plugin_name="kili_folder", project_id=PROJECT)
    activations = server.api.get(f"/v1/projects/{PROJECT}/plugins").json()
    assert [(a["plugin"], a["events"]) for a in activations] == [("kili_folder", ["onReview"])]

    for asset in ("a1", "a2"):
        run = server.run_event(type="onReview", project_id=PROJECT, asset_id=asset, label={})
        assert run["status"] == "succeeded", run

    logs = json.loads(kili.get_plugin_logs(project_id=PROJECT, plugin_name="kili_folder"))
    rest = server.logs(project_id=PROJECT, plugin_name="kili_folder")
    assert [entry["content"] for entry in logs] == [r["content"] for r in rest]
    shouted = [e for e in logs if e["content"] == "1 RULES, IBAN OK: TRUE"]
    assert len(shouted) == 2
    assert set(shouted[0]) == {
        "content",
        "createdAt",
        "logType",
        "metadata",
        "pluginName",
        "projectId",
        "runId",
    }
    assert shouted[0]["logType"] == "INFO"
    assert shouted[0]["pluginName"] == "kili_folder"
    assert shouted[0]["projectId"] == PROJECT
    assert shouted[0]["metadata"] == {"assetId": "a1", "labelId": None}
    assert shouted[0]["createdAt"].endswith("Z")
    page = json.loads(
        kili.get_plugin_logs(project_id=PROJECT, plugin_name="kili_folder", limit=2, skip=1)
    )
    assert page == logs[1:3]

    assert kili.update_plugin(
        plugin_path=str(PLUGINS / "folder_relative"), plugin_name="kili_folder"
    ) == ("Plugin updated successfully")
    versions = server.api.get("/v1/plugins/kili_folder").json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "ACTIVE"), (2, "ACTIVE")]

    listed = kili.list_plugins()
    assert [(p["name"], p["projectIds"]) for p in listed] == [("kili_folder", [PROJECT])]

    kili.deactivate_plugin_on_project(plugin_name="kili_folder", project_id=PROJECT)
    assert server.api.get(f"/v1/projects/{PROJECT}/plugins").json() == []
    kili.delete_plugin(plugin_name="kili_folder")
    assert "kili_folder" not in plugin_names(server)
    actions = [
        e["action"] for e in server.api.get("/v1/audit").json() if e["target"] == "kili_folder"
    ]
    assert {"plugin.upload", "plugin.activate", "plugin.deactivate", "plugin.delete"} <= set(
        actions
    )


def test_single_file_plugin_through_the_sdk(
    server: RunningServer, kili: Any, tmp_path: Path
) -> None:
    path = tmp_path / "kili_single.py"
    path.write_text(SINGLE_FILE)
    kili.upload_plugin(plugin_path=str(path), plugin_name="kili_single")
    kili.activate_plugin_on_project(plugin_name="kili_single", project_id="single-project")
    run = server.run_event(type="onSubmit", project_id="single-project", asset_id="s1", label={})
    assert run["status"] == "succeeded", run
    logs = json.loads(kili.get_plugin_logs(project_id="single-project", plugin_name="kili_single"))
    assert [(e["logType"], e["content"]) for e in logs] == [
        *[("INFO", f"line {n} of s1") for n in range(3)],
        ("INFO", "batch: 100%"),  # the bar's final state, not each redraw, not a WARNING
    ]


def test_build_errors_of_a_failed_build_through_the_sdk(
    server: RunningServer, kili: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "kili_broken"
    folder.mkdir()
    (folder / "main.py").write_text(SINGLE_FILE)
    (folder / "requirements.txt").write_text("no-such-package-kili-test==1.0\n")
    with pytest.raises(PluginCreationError, match="get_plugin_build_errors"):
        kili.upload_plugin(plugin_path=str(folder), plugin_name="kili_broken")
    errors = json.loads(kili.get_plugin_build_errors(plugin_name="kili_broken"))
    text = "\n".join(e["content"] for e in errors)
    assert "No matching distribution found for no-such-package-kili-test==1.0" in text
    build = server.api.get("/v1/plugins/kili_broken/versions/1/build-log").json()
    assert errors[-1]["content"] == build["error"]
    assert {(e["logType"], e["pluginName"]) for e in errors} == {("ERROR", "kili_broken")}
    assert json.loads(kili.get_plugin_build_errors(plugin_name="kili_broken", skip=1, limit=1)) == [
        errors[1]
    ]


def test_create_plugin_with_a_taken_name_is_refused_naming_update_plugin(
    server: RunningServer, kili: Any, tmp_path: Path
) -> None:
    path = tmp_path / "kili_taken.py"
    path.write_text(SINGLE_FILE)
    kili.upload_plugin(plugin_path=str(path), plugin_name="kili_taken")
    versions_before = server.api.get("/v1/plugins/kili_taken").json()["versions"]
    with pytest.raises(GraphQLError, match="an entity Plugin already exists with value") as err:
        kili.upload_plugin(plugin_path=str(path), plugin_name="kili_taken")
    assert "kili.update_plugin" in str(err.value)
    assert server.api.get("/v1/plugins/kili_taken").json()["versions"] == versions_before


def test_operation_not_implemented_is_named(server: RunningServer, kili: Any) -> None:
    before = plugin_names(server)
    with pytest.raises(GraphQLError, match="'createWebhook' is not implemented"):
        kili.create_webhook(webhook_url="http://127.0.0.1:9/hook", plugin_name="kili_hook")
    response = graphql(server, 'mutation { data: publishPlugin(name: "x") }')
    assert response.status_code == 400
    first = response.json()["errors"][0]
    assert first["message"].startswith("Kili operation 'publishPlugin' is not implemented")
    assert "createPlugin" in first["message"]
    assert first["extensions"] == {"code": "operation_not_implemented"}
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


def test_wrong_key_and_another_tenants_plugin(server: RunningServer, kili_env: None) -> None:
    wrong = kili_client(server, key="pe_key_not-a-key")
    with pytest.raises(GraphQLError, match="unknown API key: check the key you were given"):
        wrong.list_plugins()

    create_tenant(server, "kili-acme")
    assign_project(server, "kili-acme", "acme-project")
    acme_key = create_key(server, "kili-acme", ALL_SCOPES)["key"]
    reader_key = create_key(server, "kili-acme", ["plugins:read"])["key"]
    response = server.api.post(
        "/v1/plugins", data={"name": "kili_default"}, files={"file": ("main.py", SINGLE_FILE)}
    )
    assert response.status_code == 202, response.text
    acme = kili_client(server, acme_key)
    with pytest.raises(GraphQLError, match="no plugin named 'kili_default'"):
        acme.activate_plugin_on_project(plugin_name="kili_default", project_id="acme-project")
    with pytest.raises(GraphQLError, match="no plugin named 'kili_default'"):
        acme.delete_plugin(plugin_name="kili_default")
    assert acme.list_plugins() == []
    assert "kili_default" in plugin_names(server)

    reader = kili_client(server, reader_key)
    with pytest.raises(GraphQLError, match="plugins:write"):
        reader.delete_plugin(plugin_name="kili_default")
    response = graphql(server, 'mutation { deletePlugin(where: {pluginName: "x"}) }', reader_key)
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "missing_scope"
    assert "kili_default" in plugin_names(server)


def test_upload_url_refuses_an_unknown_ticket(server: RunningServer) -> None:
    response = httpx.put(f"{server.url}/graphql/upload?ticket=made-up", content=b"PK")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "unknown or expired" in response.json()["message"]
