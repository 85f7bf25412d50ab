"""Edges of the HTTP API: who reads the node list, which host the API's own URLs name,
and what a request too broken for the app to see is answered."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory
from tests.integration.tenancy import as_key, create_key, create_tenant

pytestmark = pytest.mark.docker

PUBLIC = "https://executor.example:8443"
FORGED = {"Host": "attacker.example"}
MAX_HEAD_BYTES = 16 * 1024  # uvicorn's (h11's) bound on an unfinished request head


@pytest.fixture(scope="module")
def public(server_factory: ServerFactory) -> RunningServer:
    return server_factory(public_url=PUBLIC + "/")


def test_the_node_list_takes_the_operator_key_only(server: RunningServer) -> None:
    create_tenant(server, "nodes-reader")
    admin = as_key(server, create_key(server, "nodes-reader", ["admin"])["key"])
    try:
        refused = admin.api.get("/v1/nodes")
    finally:
        admin.api.close()
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "missing_scope"
    assert server.api.get("/v1/nodes").status_code == 200


@pytest.mark.parametrize(
    ("path", "location"),
    [("/v1/plugins/", "/v1/plugins"), ("/ui", "/ui/"), ("/v1/plugins/?limit=5", "/v1/plugins")],
)
def test_a_redirect_names_the_public_url_never_the_host_header(
    public: RunningServer, path: str, location: str
) -> None:
    response = public.api.get(path, headers=FORGED, follow_redirects=False)
    assert response.status_code == 307, response.text
    query = "?" + path.partition("?")[2] if "?" in path else ""
    assert response.headers["location"] == PUBLIC + location + query


def test_without_a_public_url_a_redirect_names_the_listen_address(server: RunningServer) -> None:
    response = server.api.get("/v1/plugins/", headers=FORGED, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"http://127.0.0.1:{server.settings.port}/v1/plugins"


def test_a_graphql_upload_url_names_the_public_url(public: RunningServer) -> None:
    response = httpx.post(
        f"{public.url}/graphql",
        json={"query": 'mutation { createPlugin(data: {pluginName: "hosted"}) }'},
        headers={"Authorization": f"Bearer {OPERATOR_KEY}", **FORGED},
    )
    assert response.status_code == 200, response.text
    url = response.json()["data"]["createPlugin"]
    assert url.startswith(f"{PUBLIC}/graphql/upload?ticket="), url


def _raw(server: RunningServer, data: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``data`` on a new connection; the answer's status, headers and JSON body (the
    server closes the connection after it)."""
    with socket.create_connection(("127.0.0.1", server.settings.port), timeout=60) as raw:
        raw.sendall(data)
        with raw.makefile("rb") as stream:
            status = int(stream.readline().split()[1])
            headers: dict[str, str] = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            assert stream.read(1) == b""  # closed after the answer
    return status, headers, json.loads(body)


def test_a_head_too_large_for_the_server_gets_a_json_431(server: RunningServer) -> None:
    # Headers arriving past the bound before the head ends (10,000 of them would be too).
    head = b"GET /v1/plugins HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * (MAX_HEAD_BYTES // 8)
    status, headers, body = _raw(server, head)
    assert (status, headers["content-type"]) == (431, "application/json")
    assert body == {
        "code": "headers_too_large",
        "message": f"the request line and headers are over {MAX_HEAD_BYTES} bytes: "
        "send fewer or shorter headers",
    }


@pytest.mark.parametrize(
    "data",
    [b"GARBAGE\r\n\r\n", b"GET /v1/plugins HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"],
    ids=["request-line", "header-line"],
)
def test_a_request_the_server_cannot_parse_gets_a_json_400(
    server: RunningServer, data: bytes
) -> None:
    status, headers, body = _raw(server, data)
    assert (status, headers["content-type"]) == (400, "application/json")
    assert body["code"] == "bad_request"
    assert body["message"].startswith("not a valid HTTP/1.1 request: "), body
