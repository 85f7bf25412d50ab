"""The HTTP API's contract on a real server: keys, refused uploads, validation, idempotency."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.unit.test_statuses import DOCUMENTED_INVOCATION_STATUSES

GOOD_MAIN = b"class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"
PUBLIC_PATHS = {"/healthz", "/readyz"}
LABELED = {"asset_id": "a", "label": {}}  # what onSubmit and onReview events need


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def tar_with_symlink() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("main.py")
        info.size = len(GOOD_MAIN)
        archive.addfile(info, io.BytesIO(GOOD_MAIN))
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    return buffer.getvalue()


def tar_with_latin1_name(*, compressed: bool) -> bytes:
    """A tar whose second entry is named 'café.py' in Latin-1 (byte 0xe9: not UTF-8)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compressed else "w") as archive:
        for name in ("main.py", b"caf\xe9.py".decode("utf-8", "surrogateescape")):
            info = tarfile.TarInfo(name)
            info.size = len(GOOD_MAIN)
            archive.addfile(info, io.BytesIO(GOOD_MAIN))
    return buffer.getvalue()


NAME_NOT_UTF8 = (
    "Archive entry 'caf\\xe9.py' has a name that is not valid UTF-8: rename the file with a "
    "UTF-8 name (or re-create the archive on a system that writes UTF-8 names) and upload again."
)


def routes(server: RunningServer) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, from its own OpenAPI route table."""
    found = []
    for path, operations in server.service_app.openapi()["paths"].items():
        if path not in PUBLIC_PATHS:
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            found += [(method.upper(), concrete) for method in sorted(operations)]
    return found


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}]
)
def test_every_route_refuses_a_missing_or_wrong_key(
    server: RunningServer, headers: dict[str, str]
) -> None:
    checked = routes(server)
    assert len(checked) >= 10  # generated from the app's own route table
    with httpx.Client(base_url=server.url, headers=headers) as anonymous:
        for method, path in checked:
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["code"] == "not_authenticated", (method, path)
            assert response.headers["www-authenticate"] == "Bearer"


def upload(
    server: RunningServer, filename: str, data: bytes, name: str = "refused"
) -> httpx.Response:
    return server.api.post("/v1/plugins", data={"name": name}, files={"file": (filename, data)})


REFUSED = [
    (
        "syntax-error",
        "main.py",
        b"class PluginHandler:\n    def on_submit(self, label, asset_id):\n        return (\n",
        422,
        "plugin_rejected",
        "main.py",
        3,
        "main.py, line 3: '(' was never closed. Fix the syntax error and upload again.",
    ),
    (
        "no-main",
        "p.zip",
        zip_of({"helpers.py": b"x = 1\n"}),
        422,
        "plugin_rejected",
        "main.py",
        None,
        "The upload has no main.py at its root (found: helpers.py): put main.py at the top of "
        "the plugin folder and upload again.",
    ),
    (
        "no-plugin-handler",
        "main.py",
        b"class Handler:\n    def on_submit(self, label, asset_id):\n        pass\n",
        422,
        "plugin_rejected",
        "main.py",
        None,
        "main.py has no top-level 'class PluginHandler': define it, for example "
        "'class PluginHandler(PluginCore):' with an on_submit method, and upload again.",
    ),
    (
        "no-handler",
        "main.py",
        b"class PluginHandler:\n    def helper(self):\n        pass\n",
        422,
        "plugin_rejected",
        "main.py",
        1,
        "main.py, line 1: class PluginHandler defines none of the handlers on_submit, "
        "on_review, on_custom_interface_click, on_send_back_to_queue or on_event. Add at least "
        "one of them as a method and upload again.",
    ),
    (
        "dotdot",
        "p.zip",
        zip_of({"main.py": GOOD_MAIN, "../evil.py": b"x = 1\n"}),
        422,
        "plugin_rejected",
        "../evil.py",
        None,
        "Archive entry '../evil.py' contains a '..' component: archive the plugin folder with "
        "relative paths and upload again.",
    ),
    (
        "symlink",
        "p.tar.gz",
        tar_with_symlink(),
        422,
        "plugin_rejected",
        "passwd",
        None,
        "Archive entry 'passwd' is a symbolic link: replace it with the file it points to and "
        "upload again.",
    ),
    (
        "tar-gz-entry-name-not-utf8",
        "p.tar.gz",
        tar_with_latin1_name(compressed=True),
        422,
        "plugin_rejected",
        "caf\\xe9.py",
        None,
        NAME_NOT_UTF8,
    ),
    (
        "plain-tar-entry-name-not-utf8",
        "p.tar",
        tar_with_latin1_name(compressed=False),
        422,
        "plugin_rejected",
        "caf\\xe9.py",
        None,
        NAME_NOT_UTF8,
    ),
    (
        "not-an-archive",
        "p.zip",
        b"\x00\x01 definitely not an archive",
        422,
        "plugin_rejected",
        "p.zip",
        None,
        "'p.zip' is not a zip, tar.gz or tar archive, nor a .py file: upload the plugin folder "
        "as .zip or .tar.gz, or a single .py file.",
    ),
]


@pytest.mark.parametrize(
    ("filename", "data", "status", "code", "file", "line", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_uploads_answer_json_naming_file_and_line_and_store_nothing(
    server: RunningServer,
    filename: str,
    data: bytes,
    status: int,
    code: str,
    file: str | None,
    line: int | None,
    message: str,
) -> None:
    before = server.api.get("/v1/plugins").json()
    response = upload(server, filename, data)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body.get("file") == file and body.get("line") == line
    assert body["message"] == message
    assert server.api.get("/v1/plugins").json() == before
    assert server.api.get("/v1/plugins/refused").status_code == 404


def test_an_upload_over_10_mib_is_refused_with_413(server: RunningServer) -> None:
    response = upload(server, "big.zip", b"PK\x03\x04" + bytes(10 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "upload_too_large"
    assert server.api.get("/v1/plugins/refused").status_code == 404


def test_a_bad_plugin_name_is_refused(server: RunningServer) -> None:
    response = upload(server, "main.py", GOOD_MAIN, name="../etc")
    assert response.status_code == 422
    assert response.json() == {
        "code": "invalid_identifier",
        "message": "plugin name '../etc' is not allowed: it contains '/'; use 1 to 64 printable "
        "characters (letters, digits, punctuation, single spaces between words), no '/', and "
        "no word mixing scripts",
        "field": "name",
    }


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"project_id": "p"}, "body.type"),
        ({"type": "onSubmit"}, "body.project_id"),
        ({"type": "onSubmit", "project_id": "p", "asset_id": "a", "label": "x"}, "body.label"),
        (
            {"type": "onSubmit", "project_id": "p", "asset_id": "a", "label": {}, "surprise": 1},
            "body.surprise",
        ),
        ({"type": "on Submit!", "project_id": "p"}, "body.type"),
    ],
)
def test_malformed_events_get_422_with_the_field_path(
    server: RunningServer, event: dict[str, Any], field: str
) -> None:
    response = server.api.post("/v1/events", json=event)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["errors"][0]["field"] == field
    assert body["message"].startswith(f"{field}: ")


def test_a_body_that_is_not_json_gets_422(server: RunningServer) -> None:
    response = server.api.post(
        "/v1/events", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_the_same_event_id_twice_starts_one_set_of_runs(server: RunningServer) -> None:
    server.push("folder_relative", name="idem")
    server.activate("idem", "idem-project", events=["onReview"])
    first = server.api.post(
        "/v1/events",
        json={"id": "evt-1", "type": "onReview", "project_id": "idem-project", **LABELED},
    )
    second = server.api.post(
        "/v1/events",
        json={"id": "evt-1", "type": "onReview", "project_id": "idem-project", **LABELED},
    )
    assert first.status_code == 202 and second.status_code == 200
    assert first.json() == second.json() and len(first.json()["invocations"]) == 1
    runs = server.api.get("/v1/invocations", params={"plugin_name": "idem"}).json()
    assert len(runs) == 1


def test_unknown_resources_are_404_json(server: RunningServer) -> None:
    for path in (
        "/v1/plugins/nope",
        "/v1/invocations/nope",
        "/v1/plugins/nope/versions/1/build-log",
    ):
        response = server.api.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    response = server.api.put("/v1/projects/p/plugins/nope")
    assert response.status_code == 404


def test_health_and_readiness(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {
        "ready": True,
        "store": True,
        "docker": True,
    }


def enum_of(schema: dict[str, Any], model: str, field: str) -> list[str]:
    """The strings the served OpenAPI schema allows for ``model.field`` (or its items)."""
    components = schema["components"]["schemas"]
    node = components[model]["properties"][field]
    node = node.get("items", node)
    if "$ref" in node:
        node = components[node["$ref"].rsplit("/", 1)[1]]
    return list(node["enum"])


def test_the_openapi_schema_lists_the_same_status_and_scope_strings(
    server: RunningServer,
) -> None:
    schema = server.api.get("/openapi.json").json()
    assert enum_of(schema, "InvocationPublic", "status") == DOCUMENTED_INVOCATION_STATUSES
    assert enum_of(schema, "VersionPublic", "status") == ["DEPLOYING", "ACTIVE", "FAILED"]
    assert enum_of(schema, "KeyIn", "scopes") == [
        "plugins:write",
        "plugins:read",
        "logs:read",
        "events:write",
        "admin",
    ]


def test_an_unknown_scope_is_refused_naming_the_item_and_no_key_is_made(
    server: RunningServer,
) -> None:
    response = server.api.post(
        "/v1/tenants/default/keys", json={"name": "k", "scopes": ["logs:read", "logs:write"]}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["errors"] == [
        {
            "field": "body.scopes.1",
            "message": "Input should be 'plugins:write', 'plugins:read', 'logs:read', "
            "'events:write' or 'admin'",
        }
    ]
    assert server.api.get("/v1/tenants/default/keys").json() == []
