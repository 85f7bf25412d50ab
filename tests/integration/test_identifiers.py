"""Every name and id is matched whole, by one rule per kind, at every entry point.

Each bad value goes to each place an identifier enters (REST bodies, paths and form fields,
the GraphQL operations, the CLI's arguments): each is refused with 422 ``invalid_identifier``
naming the field (GraphQL: in ``extensions``; the CLI: a usage error, exit 2, before any
request), and nothing is created (the plugins, tenants and audit trail are unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from executor.cli import app as cli_app
from tests.conftest import OPERATOR_KEY, RunningServer

pytestmark = pytest.mark.docker

LONG = "x" * 5000
BAD = ["qa_bot\n", "../../x", "a\nb", LONG]
GOOD_MAIN = b"class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"
NODE_OR_ID = "1 to 200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
PLUGIN_NAMES = (
    "use 1 to 64 printable characters (letters, digits, punctuation, single spaces between "
    "words), no '/', and no word mixing scripts"
)
ALLOWED = {
    "plugin name": PLUGIN_NAMES,
    "webhook name": PLUGIN_NAMES,
    "project id": "use 1 to 200 letters, digits, '_', '.', ':', '@' or '-', starting with a "
    "letter or digit",
    "event id": "use 1 to 200 letters, digits, '_', '.', ':', '@' or '-', starting with a "
    "letter or digit",
    "invocation id": "use 1 to 200 letters, digits, '_', '.', ':', '@' or '-', starting with a "
    "letter or digit",
    "tenant name": "use 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter "
    "or digit",
    "key id": "use the id of the key as its key list shows it (a lower-case UUID)",
    "node id": f"use {NODE_OR_ID}",
    "version number": "use the version's number: 1, 2, 3, ...",
}


# Plugin names are free text: their refusals say what is wrong before what is allowed.
FLAWS = {
    "qa_bot\n": "character 7 is U+000A, a control character; ",
    "../../x": "it contains '/'; ",
    "a\nb": "character 2 is U+000A, a control character; ",
    LONG: "it has more than 64 characters; ",
}


def refusal(kind: str, value: str) -> str:
    shown = repr(value) if len(value) <= 60 else f"{value[:60]!r}... ({len(value)} characters)"
    flaw = FLAWS[value] if kind in ("plugin name", "webhook name") else ""
    return f"{kind} {shown} is not allowed: {flaw}{ALLOWED[kind]}"


def state(server: RunningServer) -> list[Any]:
    """What a refused request must leave as it was."""
    found = [server.api.get(path).json() for path in ("/v1/plugins", "/v1/tenants", "/v1/audit")]
    nodes = [(n["id"], n["state"]) for n in server.api.get("/v1/nodes").json()]
    return [*found, nodes]


@dataclass(frozen=True)
class Rest:
    """One place a REST request carries an identifier: ``send(api, value)``; ``field`` is
    where the answer says it was."""

    name: str
    kind: str
    field: str
    send: Callable[[httpx.Client, str], httpx.Response]
    in_path: bool = False


def _path(value: str) -> str:
    return quote(value, safe="")


REST = [
    Rest(
        "upload name",
        "plugin name",
        "name",
        lambda api, v: api.post(
            "/v1/plugins", data={"name": v}, files={"file": ("main.py", GOOD_MAIN)}
        ),
    ),
    Rest(
        "activation plugin",
        "plugin name",
        "path.name",
        lambda api, v: api.put(f"/v1/projects/p1/plugins/{_path(v)}"),
        in_path=True,
    ),
    Rest(
        "activation project",
        "project id",
        "path.project_id",
        lambda api, v: api.put(f"/v1/projects/{_path(v)}/plugins/qa_bot"),
        in_path=True,
    ),
    Rest(
        "event project",
        "project id",
        "body.project_id",
        lambda api, v: api.post("/v1/events", json={"type": "onFoo", "project_id": v}),
    ),
    Rest(
        "event id",
        "event id",
        "body.id",
        lambda api, v: api.post("/v1/events", json={"type": "onFoo", "project_id": "p", "id": v}),
    ),
    Rest(
        "tenant create",
        "tenant name",
        "body.name",
        lambda api, v: api.post("/v1/tenants", json={"name": v}),
    ),
    Rest(
        "project assign",
        "project id",
        "path.project_id",
        lambda api, v: api.put(f"/v1/tenants/default/projects/{_path(v)}"),
        in_path=True,
    ),
    Rest(
        "key create",
        "tenant name",
        "path.tenant",
        lambda api, v: api.post(
            f"/v1/tenants/{_path(v)}/keys", json={"name": "k", "scopes": ["plugins:read"]}
        ),
        in_path=True,
    ),
    Rest(
        "key revoke",
        "key id",
        "path.key_id",
        lambda api, v: api.delete(f"/v1/tenants/default/keys/{_path(v)}"),
        in_path=True,
    ),
    Rest(
        "webhook create",
        "webhook name",
        "body.plugin_name",
        lambda api, v: api.post(
            "/v1/webhooks", json={"webhook_url": "http://93.184.216.34/hook", "plugin_name": v}
        ),
    ),
    Rest(
        "webhook update",
        "webhook name",
        "path.webhook",
        lambda api, v: api.patch(f"/v1/webhooks/{_path(v)}", json={}),
        in_path=True,
    ),
    Rest(
        "build log version",
        "version number",
        "path.version",
        lambda api, v: api.get(f"/v1/plugins/qa_bot/versions/{_path(v)}/build-log"),
        in_path=True,
    ),
    Rest(
        "run",
        "invocation id",
        "path.invocation_id",
        lambda api, v: api.get(f"/v1/invocations/{_path(v)}"),
        in_path=True,
    ),
    Rest(
        "runs filter",
        "plugin name",
        "query.plugin_name",
        lambda api, v: api.get("/v1/invocations", params={"plugin_name": v}),
    ),
    Rest(
        "logs filter",
        "invocation id",
        "query.run_id",
        lambda api, v: api.get("/v1/logs", params={"run_id": v}),
    ),
    Rest(
        "stats filter",
        "project id",
        "query.project",
        lambda api, v: api.get("/v1/stats", params={"project": v}),
    ),
    Rest(
        "node drain",
        "node id",
        "path.node_id",
        lambda api, v: api.post(f"/v1/nodes/{_path(v)}/drain"),
        in_path=True,
    ),
]


@pytest.fixture(scope="module")
def before(server: RunningServer) -> Iterator[list[Any]]:
    yield state(server)


@pytest.mark.parametrize("value", BAD, ids=["final-newline", "dot-dot", "inner-newline", "5000"])
@pytest.mark.parametrize("entry", REST, ids=[e.name for e in REST])
def test_rest_refuses_a_bad_identifier_naming_the_field(
    server: RunningServer, before: list[Any], entry: Rest, value: str
) -> None:
    response = entry.send(server.api, value)
    if entry.in_path and "/" in value:
        # A '/' (even as %2F) splits the path: no route has that many segments.
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    else:
        assert response.status_code == 422, response.text
        body = response.json()
        expected = refusal(entry.kind, value)
        if "." in entry.field:  # checked as the request is read
            expected = f"{entry.field}: {expected}; fix the request and send it again"
        assert (body["code"], body["field"], body["message"]) == (
            "invalid_identifier",
            entry.field,
            expected,
        )
    assert state(server) == before


def graphql(server: RunningServer, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}{server.settings.api.graphql_path}",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


GRAPHQL = [
    (
        "mutation($v: String!) { createPlugin(data: {pluginName: $v}) }",
        "plugin name",
        "pluginName",
    ),
    (
        'mutation($v: ID!) { activatePluginOnProject(where: {pluginName: "qa_bot", '
        "projectId: $v}) }",
        "project id",
        "projectId",
    ),
    (
        "mutation($v: String!) { activatePluginOnProject(where: {pluginName: $v, "
        'projectId: "p"}) }',
        "plugin name",
        "pluginName",
    ),
    (
        "mutation($v: String!) { createWebhook(data: {pluginName: $v, "
        'webhookUrl: "http://93.184.216.34/hook"}) }',
        "plugin name",
        "pluginName",
    ),
    ("query($v: String!) { getPluginRunnerStatus(name: $v) }", "plugin name", "name"),
]


@pytest.mark.parametrize("value", BAD, ids=["final-newline", "dot-dot", "inner-newline", "5000"])
@pytest.mark.parametrize(
    ("query", "kind", "field"), GRAPHQL, ids=[g[2] + g[0][:12] for g in GRAPHQL]
)
def test_graphql_refuses_a_bad_identifier_as_rest_does(
    server: RunningServer, before: list[Any], query: str, kind: str, field: str, value: str
) -> None:
    answer = graphql(server, query, {"v": value})
    assert answer["data"] is None, answer
    (error,) = answer["errors"]
    assert error["message"] == refusal(kind, value)
    assert error["extensions"] == {"code": "invalid_identifier", "status": 422, "field": field}
    assert state(server) == before


CLI = [
    (["activate", "qa_bot", "--project", "{v}"], "'--project' / '-p'", "project id"),
    (["activate", "{v}", "--project", "p1"], "'name'", "plugin name"),
    (["push", "{main}", "--name", "{v}"], "'--name'", "plugin name"),
    (["event", "--project", "{v}"], "'--project' / '-p'", "project id"),
    (["tenants", "create", "{v}"], "'name'", "tenant name"),
    (["tenants", "assign-project", "{v}", "--tenant", "default"], "'project'", "project id"),
    (["keys", "revoke", "{v}", "--tenant", "default"], "'key_id'", "key id"),
    (["nodes", "drain", "{v}"], "'node_id'", "node id"),
    (["webhook", "create", "{v}", "http://93.184.216.34/hook"], "'name'", "plugin name"),
]


@pytest.mark.parametrize("value", BAD, ids=["final-newline", "dot-dot", "inner-newline", "5000"])
@pytest.mark.parametrize(("args", "parameter", "kind"), CLI, ids=[" ".join(c[0][:2]) for c in CLI])
def test_the_cli_refuses_a_bad_identifier_before_any_request(
    server: RunningServer,
    before: list[Any],
    tmp_path: Any,
    args: list[str],
    parameter: str,
    kind: str,
    value: str,
) -> None:
    main = tmp_path / "main.py"
    main.write_bytes(GOOD_MAIN)
    argv = [a.format(v=value, main=main) for a in args]
    env = {"EXECUTOR_URL": server.url, "EXECUTOR_API_KEY": OPERATOR_KEY, "COLUMNS": "400"}
    result = CliRunner().invoke(cli_app, argv, env=env)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())
    problem = refusal(kind, value)
    assert f"Invalid value for {parameter}: {' '.join(problem.split())}" in said, said
    assert state(server) == before
