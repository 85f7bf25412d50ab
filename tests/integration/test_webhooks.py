"""Webhooks (issue 16, item 4) on a real executor, delivering over real HTTP to a receiver on
loopback (allowed through EXECUTOR_WEBHOOK_ALLOWED_HOSTS for its port only): signed
deliveries, retries on 5xx and timeouts, redirects not followed, and receivers on loopback,
link-local or private addresses refused at create and at connect time."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, ServerFactory
from tests.integration.webhook_receiver import Receiver, serve_receiver

pytestmark = pytest.mark.docker

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
HEADER = "Bearer receiver-token-0123456789"
ATTEMPTS = 3  # EXECUTOR_WEBHOOK_MAX_ATTEMPTS of the server under test
SIGNATURE = "X-Executor-Signature"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as serving:
        yield serving


def _settings(receiver: Receiver, **overrides: Any) -> dict[str, Any]:
    return {
        "webhook_allowed_hosts": [f"127.0.0.1:{receiver.port}"],
        "webhook_max_attempts": ATTEMPTS,
        "webhook_timeout_s": 2.0,
        "retry_base_s": 0.05,
        "retry_max_s": 0.1,
        **overrides,
    }


@pytest.fixture(scope="module")
def hooks(server_factory: ServerFactory, receiver: Receiver) -> RunningServer:
    return server_factory(**_settings(receiver))


def documented_verify() -> Callable[[str, str, bytes], bool]:
    """The verification snippet of docs/webhooks.md, run as written."""
    snippet = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert snippet is not None, "docs/webhooks.md has no python snippet"
    namespace: dict[str, Any] = {}
    exec(snippet.group(1), namespace)
    verify: Callable[[str, str, bytes], bool] = namespace["verify"]
    return verify


def create(server: RunningServer, name: str, url: str, **fields: Any) -> dict[str, Any]:
    response = server.api.post(
        "/v1/webhooks", json={"webhook_url": url, "plugin_name": name, **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def hook_run(server: RunningServer, receiver: Receiver, name: str, path: str) -> dict[str, Any]:
    """Create webhook ``name`` to ``path``, activate it on its own project, post one event
    and wait for its invocation to end."""
    create(server, name, f"http://127.0.0.1:{receiver.port}{path}", header=HEADER)
    server.activate(name, f"project-{name}")
    return server.run_event(
        type="onSubmit",
        project_id=f"project-{name}",
        asset_id="asset-1",
        label={"id": "label-1", "jsonResponse": {"CLASS": "A"}},
    )


def test_event_delivered_with_header_and_valid_signature(
    hooks: RunningServer, receiver: Receiver
) -> None:
    created = create(hooks, "signed", f"http://127.0.0.1:{receiver.port}/ok", header=HEADER)
    assert created["signing_secret"].startswith("whsec_")
    assert created["header"] == "****" + HEADER[-4:]  # never returned in full
    assert created["handler_types"] == ["onSubmit", "onReview"]  # Kili's default
    hooks.activate("signed", "project-signed")
    run = hooks.run_event(
        type="onSubmit",
        project_id="project-signed",
        asset_id="asset-1",
        label={"id": "label-1", "jsonResponse": {"CLASS": "A"}},
    )
    assert run["status"] == "succeeded", run
    assert (run["http_status"], run["attempt"], run["image_id"]) == (200, 1, None)
    [got] = receiver.hits("/ok")
    assert got.headers["Authorization"] == HEADER
    assert got.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert documented_verify()(created["signing_secret"], got.headers[SIGNATURE], got.body)
    assert not documented_verify()("whsec_another", got.headers[SIGNATURE], got.body)
    document = json.loads(got.body)
    assert document == {
        "eventType": "onSubmit",
        "logPayload": {"runId": run["id"], "projectId": "project-signed", "pluginName": "signed"},
        "payload": {
            "label": {"id": "label-1", "jsonResponse": {"CLASS": "A"}},
            "asset_id": "asset-1",
            "payload": None,
        },
        "attempt": 1,
    }
    [line] = [r["content"] for r in hooks.logs(run_id=run["id"]) if r["content"][:5] == "POST "]
    assert re.fullmatch(rf"POST http://127.0.0.1:{receiver.port}/ok: HTTP 200 OK in \d+ ms", line)
    listed = {p["name"]: p for p in hooks.api.get("/v1/plugins").json()}
    assert (listed["signed"]["kind"], listed["signed"]["status"]) == ("webhook", "ACTIVE")
    assert HEADER not in json.dumps(hooks.api.get("/v1/audit").json())


def test_5xx_then_200_is_retried_until_it_succeeds(
    hooks: RunningServer, receiver: Receiver
) -> None:
    run = hook_run(hooks, receiver, "flaky", "/flaky/2")
    assert run["status"] == "succeeded", run
    assert (run["attempt"], run["http_status"]) == (3, 200)
    assert [a["reason"].split(" in ")[0] for a in run["attempts"]] == [
        "HTTP 503 Service Unavailable",
        "HTTP 503 Service Unavailable",
        "HTTP 200 OK",
    ]
    bodies = [json.loads(r.body)["attempt"] for r in receiver.hits("/flaky/2")]
    assert bodies == [1, 2, 3]


def test_redirect_fails_naming_it_and_is_not_followed(
    hooks: RunningServer, receiver: Receiver
) -> None:
    run = hook_run(hooks, receiver, "redirected", "/redirect")
    assert run["status"] == "failed", run
    assert (run["attempt"], run["http_status"]) == (1, 302)
    target = f"http://127.0.0.1:{receiver.port}/target"
    assert f"redirect to {target} not followed" in run["error"]
    assert receiver.hits("/target") == []


def test_hanging_receiver_times_out_is_retried_then_fails(
    hooks: RunningServer, receiver: Receiver
) -> None:
    run = hook_run(hooks, receiver, "hanging", "/hang")
    assert run["status"] == "timed_out", run
    assert run["attempt"] == ATTEMPTS
    assert run["http_status"] is None
    assert run["error"].startswith(f"gave up after {ATTEMPTS} attempts: timed out")
    *retried, last = run["attempts"]
    assert len(retried) == ATTEMPTS - 1
    assert all(a["reason"].startswith("timed out (") for a in retried)
    assert last["reason"] == run["error"]
    assert len(receiver.hits("/hang")) == ATTEMPTS


def test_a_trickling_receiver_is_cut_off_at_the_time_limit(
    hooks: RunningServer, receiver: Receiver
) -> None:
    """Each read comes in time (a header line every 0.2 s), the answer's head never ends:
    the whole delivery's time limit ends each attempt."""
    run = hook_run(hooks, receiver, "trickling", "/trickle")
    assert run["status"] == "timed_out", run
    assert (run["attempt"], run["http_status"]) == (ATTEMPTS, None)
    *retried, last = run["attempts"]
    assert all(a["reason"].startswith("timed out (") for a in retried)
    assert last["reason"] == run["error"]
    assert run["error"].startswith(f"gave up after {ATTEMPTS} attempts: timed out (")
    assert len(receiver.hits("/trickle")) == ATTEMPTS


def _state(server: RunningServer) -> tuple[Any, Any]:
    return server.api.get("/v1/plugins").json(), server.api.get("/v1/audit").json()


@pytest.mark.parametrize(
    ("url", "address", "kind"),
    [
        ("http://127.0.0.1:{port_other}/", "127.0.0.1", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://10.0.0.1/hook", "10.0.0.1", "private"),
        ("https://192.168.1.20:8443/hook", "192.168.1.20", "private"),
        ("http://172.16.5.4/hook", "172.16.5.4", "private"),
        ("http://[fd00::1]/hook", "fd00::1", "private"),
        ("http://0.0.0.0:{port}/", "0.0.0.0", "unspecified"),
        ("http://localhost:{port}/ok", "127.0.0.1", "loopback"),
    ],
)
def test_receiver_address_not_allowed_is_refused_at_create(
    hooks: RunningServer, receiver: Receiver, url: str, address: str, kind: str
) -> None:
    url = url.format(port=receiver.port, port_other=receiver.port + 1)
    before = _state(hooks)
    response = hooks.api.post("/v1/webhooks", json={"webhook_url": url, "plugin_name": "nope"})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert (answer["code"], answer["field"]) == ("address_refused", "webhook_url")
    assert answer["address"] in (address, "::1")  # localhost may resolve to ::1 first
    assert f"resolves to {answer['address']}, a {kind} address" in answer["message"]
    assert "EXECUTOR_WEBHOOK_ALLOWED_HOSTS" in answer["message"]
    assert _state(hooks) == before


@pytest.mark.parametrize(
    ("body", "code", "field", "says"),
    [
        ({"webhook_url": "ftp://example.com/x"}, "webhook_rejected", "webhook_url", "http://"),
        (
            {"webhook_url": "http://user:pw@127.0.0.1/x"},
            "webhook_rejected",
            "webhook_url",
            "user info",
        ),
        ({"handler_types": ["onSubmit", "onFoo"]}, "webhook_rejected", "handler_types[1]", "onFoo"),
        ({"header": "Bearer a\r\nX-Injected: 1"}, "webhook_rejected", "header", "position 8"),
        ({"event_matcher": [""]}, "webhook_rejected", "event_matcher[0]", "empty"),
        ({"plugin_name": "has\ttab"}, "invalid_identifier", "body.plugin_name", "'has\\ttab'"),
    ],
)
def test_bad_webhook_settings_are_refused_naming_the_field(
    hooks: RunningServer,
    receiver: Receiver,
    body: dict[str, Any],
    code: str,
    field: str | None,
    says: str,
) -> None:
    sent = {
        "webhook_url": f"http://127.0.0.1:{receiver.port}/ok",
        "plugin_name": "bad-settings",
        **body,
    }
    before = _state(hooks)
    response = hooks.api.post("/v1/webhooks", json=sent)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert (answer["code"], answer.get("field")) == (code, field)
    assert says in answer["message"]
    assert _state(hooks) == before


def test_name_taken_and_update(hooks: RunningServer, receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/ok"
    created = create(hooks, "updated", url, header=HEADER)
    before = _state(hooks)
    again = hooks.api.post("/v1/webhooks", json={"webhook_url": url, "plugin_name": "updated"})
    assert again.status_code == 409, again.text
    assert "PATCH /v1/webhooks/updated" in again.json()["message"]
    assert _state(hooks) == before
    refused = hooks.api.patch("/v1/webhooks/updated", json={"webhook_url": "http://10.1.2.3/"})
    assert (refused.status_code, refused.json()["code"]) == (422, "address_refused")
    assert _state(hooks) == before
    changed = hooks.api.patch("/v1/webhooks/updated", json={"event_matcher": ["asset.*"]})
    assert changed.status_code == 200, changed.text
    assert changed.json() | {"version": 0} == created | {
        "version": 0,
        "event_matcher": ["asset.*"],
        "signing_secret": None,  # shown at create only
    }
    assert changed.json()["version"] == 2
    missing = hooks.api.patch("/v1/webhooks/no-such-hook", json={})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_name_resolving_to_loopback_is_refused_at_connect_time(
    server_factory: ServerFactory, receiver: Receiver
) -> None:
    """A webhook stored while ``localhost`` was allowed, delivered by an executor that does
    not allow it: the resolved address is checked when connecting, and nothing is sent."""
    allowing = server_factory(
        **_settings(receiver, webhook_allowed_hosts=[f"localhost:{receiver.port}"]),
        dispatch=False,
    )
    create(allowing, "rebound", f"http://localhost:{receiver.port}/rebound", header=HEADER)
    allowing.activate("rebound", "project-rebound")
    accepted = allowing.post_event(
        type="onSubmit", project_id="project-rebound", asset_id="a", label={"id": "l"}
    )
    strict = server_factory(
        **_settings(receiver), database_url=allowing.settings.resolved_database_url
    )
    run = strict.wait_run(accepted["invocations"][0])
    assert run["status"] == "failed", run
    assert run["attempt"] == 1  # a refused address is not retried
    assert run["error"].startswith("address_refused: webhook_url: host 'localhost' resolves to ")
    assert "loopback address" in run["error"]
    assert receiver.hits("/rebound") == []


def test_a_webhook_is_deleted_like_a_plugin(hooks: RunningServer, receiver: Receiver) -> None:
    run = hook_run(hooks, receiver, "deleted", "/ok")
    assert run["status"] == "succeeded", run
    assert hooks.api.delete("/v1/plugins/deleted").status_code == 204
    assert "deleted" not in {p["name"] for p in hooks.api.get("/v1/plugins").json()}
    missing = hooks.api.patch("/v1/webhooks/deleted", json={})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    kept = hooks.api.get(f"/v1/invocations/{run['id']}").json()
    assert kept["plugin_deleted_at"] is not None and kept["http_status"] == 200
    again = create(hooks, "deleted", f"http://127.0.0.1:{receiver.port}/ok")
    assert again["version"] == 1  # the name is free at once


def test_code_cannot_be_uploaded_under_a_webhook_name(
    hooks: RunningServer, receiver: Receiver
) -> None:
    create(hooks, "url-only", f"http://127.0.0.1:{receiver.port}/ok")
    before = _state(hooks)
    source = (
        b"from plugin_runtime import PluginCore\n"
        b"class PluginHandler(PluginCore):\n"
        b"    def on_submit(self, label, asset_id):\n"
        b"        pass\n"
    )
    upload = hooks.api.post(
        "/v1/plugins", data={"name": "url-only"}, files={"file": ("main.py", source)}
    )
    assert upload.status_code == 409, upload.text
    assert upload.json()["message"].startswith("'url-only' is a webhook plugin, not a code one")
    assert _state(hooks) == before
