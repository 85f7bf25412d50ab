"""The reference labeling platform on its own: API, workflow rules, and event delivery to a
real executor (no plugin activated, so no container runs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, RunningServer
from tests.labeling_platform import SERVICE_KEY, RunningPlatform, free_port, start_platform

JOBS: dict[str, Any] = {
    "CURRENCY": {
        "mlTask": "CLASSIFICATION",
        "content": {"categories": {"EUR": {"name": "EUR"}, "USD": {"name": "USD"}}},
    },
    "IBAN": {"mlTask": "TRANSCRIPTION"},
}
GOOD = {"CURRENCY": {"categories": [{"name": "EUR"}]}, "IBAN": {"text": "FR76 3000"}}


@pytest.fixture(scope="module")
def platform(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    with start_platform(tmp_path_factory.mktemp("platform"), server.url, OPERATOR_KEY) as running:
        running.project("p1", JOBS)
        yield running


@pytest.fixture(scope="module")
def alice(platform: RunningPlatform) -> httpx.Client:
    return platform.user("alice@example.com")


@pytest.fixture(scope="module")
def rita(platform: RunningPlatform) -> httpx.Client:
    return platform.user("rita@example.com", "REVIEWER")


@pytest.fixture(scope="module")
def service(platform: RunningPlatform) -> httpx.Client:
    # What the executor's gateway sends: Kili's "Authorization: X-API-Key: <key>".
    client = httpx.Client(
        base_url=platform.url, headers={"Authorization": f"X-API-Key: {SERVICE_KEY}"}
    )
    platform.clients.append(client)
    return client


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    return str(response.json()["message"])


def test_keys_in_every_accepted_form_and_refusals(platform: RunningPlatform) -> None:
    path = "/api/v1/projects/p1"
    for headers in (
        {"Authorization": f"Bearer {SERVICE_KEY}"},
        {"Authorization": f"X-API-Key: {SERVICE_KEY}"},
        {"X-API-Key": SERVICE_KEY},
    ):
        assert httpx.get(platform.url + path, headers=headers).status_code == 200
    error(httpx.get(platform.url + path), 401, "not_authenticated")
    message = error(
        httpx.get(platform.url + path, headers={"X-API-Key": "nope"}), 401, "not_authenticated"
    )
    assert message == "unknown API key"


def test_roles_are_enforced(platform: RunningPlatform, alice: httpx.Client) -> None:
    body = {"id": "p-alice", "title": "t", "jsonInterface": {"jobs": JOBS}}
    message = error(alice.post("/api/v1/projects", json=body), 403, "forbidden")
    assert "ADMIN" in message
    error(platform.admin.get("/api/v1/projects/p-alice"), 404, "not_found")
    error(alice.post("/api/v1/users", json={"email": "x@y.z"}), 403, "forbidden")
    error(
        platform.admin.post("/api/v1/users", json={"email": "alice@example.com"}), 409, "conflict"
    )


@pytest.mark.parametrize(
    ("interface", "needle"),
    [
        ({}, '"jobs"'),
        ({"jobs": {"J": {"mlTask": "SEGMENTATION"}}}, "mlTask"),
        ({"jobs": {"J": {"mlTask": "CLASSIFICATION"}}}, "categories"),
    ],
)
def test_bad_interfaces_are_refused(
    platform: RunningPlatform, interface: dict[str, Any], needle: str
) -> None:
    body = {"id": "p-bad", "title": "t", "jsonInterface": interface}
    assert needle in error(
        platform.admin.post("/api/v1/projects", json=body), 422, "invalid_interface"
    )
    error(platform.admin.get("/api/v1/projects/p-bad"), 404, "not_found")


@pytest.mark.parametrize(
    ("json_response", "needle"),
    [
        ({"NOPE": {"text": "x"}}, "job 'NOPE'"),
        ({"CURRENCY": {"categories": [{"name": "GBP"}]}}, "'GBP'"),
        ({"IBAN": {"txt": "x"}}, "transcription"),
    ],
)
def test_bad_labels_are_refused_and_change_nothing(
    platform: RunningPlatform, alice: httpx.Client, json_response: dict[str, Any], needle: str
) -> None:
    asset = platform.asset("p1", "bad-label")
    response = alice.post(
        f"/api/v1/projects/p1/assets/{asset['id']}/labels", json={"jsonResponse": json_response}
    )
    assert needle in error(response, 422, "invalid_label")
    assert platform.labels("p1", asset["id"]) == []
    assert platform.get_asset("p1", asset["id"])["status"] == "TODO"


def test_submit_labels_the_asset_and_posts_on_submit(
    platform: RunningPlatform, alice: httpx.Client
) -> None:
    asset = platform.asset("p1", "inv-1", jsonMetadata={"source": "scan"})
    label = platform.submit(alice, "p1", asset["id"], GOOD)
    assert label["author"]["email"] == "alice@example.com"
    assert label["labelType"] == "DEFAULT"
    assert platform.get_asset("p1", asset["id"])["status"] == "LABELED"
    event = platform.wait_delivered("p1", label["eventId"])
    assert event["status"] == "delivered", event
    assert event["invocations"] == []  # no plugin is active on p1
    body = event["body"]
    assert body["type"] == "onSubmit"
    assert body["project_id"] == "p1"
    assert body["asset_id"] == asset["id"]
    assert body["label"]["jsonResponse"] == GOOD
    assert body["label"]["id"] == label["id"]


def test_consensus_asset_waits_for_every_assignee(platform: RunningPlatform) -> None:
    bob = platform.user("bob@example.com")
    carl = platform.user("carl@example.com")
    dave = platform.user("dave@example.com")
    asset = platform.asset(
        "p1", "cons-1", consensusAssignees=["bob@example.com", "carl@example.com"]
    )
    response = dave.post(
        f"/api/v1/projects/p1/assets/{asset['id']}/labels", json={"jsonResponse": GOOD}
    )
    assert "dave@example.com" in error(response, 403, "not_assigned")
    platform.submit(bob, "p1", asset["id"], GOOD)
    assert platform.get_asset("p1", asset["id"])["status"] == "ONGOING"
    platform.submit(carl, "p1", asset["id"], GOOD)
    assert platform.get_asset("p1", asset["id"])["status"] == "LABELED"
    assert [lab["author"]["email"] for lab in platform.labels("p1", asset["id"])] == [
        "bob@example.com",
        "carl@example.com",
    ]
    message = error(
        platform.admin.post(
            "/api/v1/projects/p1/assets", json={"externalId": "x", "consensusAssignees": ["z@z.z"]}
        ),
        422,
        "invalid_asset",
    )
    assert "z@z.z" in message


def test_review_flow_and_queue(
    platform: RunningPlatform, alice: httpx.Client, rita: httpx.Client, service: httpx.Client
) -> None:
    platform.project("p-review", JOBS)
    first = platform.asset("p-review", "r-1")
    second = platform.asset("p-review", "r-2")
    todo = platform.asset("p-review", "r-3")
    platform.submit(alice, "p-review", first["id"], GOOD)
    platform.submit(alice, "p-review", second["id"], GOOD)
    patched = service.patch(
        f"/api/v1/projects/p-review/assets/{second['id']}", json={"status": "TO_REVIEW"}
    )
    assert patched.json()["status"] == "TO_REVIEW"
    queue = rita.get("/api/v1/projects/p-review/review-queue").json()
    assert [a["id"] for a in queue] == [second["id"], first["id"]]

    url = f"/api/v1/projects/p-review/assets/{first['id']}/labels"
    review = {"jsonResponse": GOOD, "labelType": "REVIEW"}
    error(alice.post(url, json=review), 403, "forbidden")
    error(service.post(url, json=review), 403, "forbidden")
    todo_url = f"/api/v1/projects/p-review/assets/{todo['id']}/labels"
    assert "TODO" in error(rita.post(todo_url, json=review), 409, "not_reviewable")
    label = platform.submit(rita, "p-review", first["id"], GOOD, "REVIEW")
    assert platform.get_asset("p-review", first["id"])["status"] == "REVIEWED"
    assert platform.wait_delivered("p-review", label["eventId"])["body"]["type"] == "onReview"
    assert [a["id"] for a in rita.get("/api/v1/projects/p-review/review-queue").json()] == [
        second["id"]
    ]


def test_what_plugins_do_with_the_service_key(
    platform: RunningPlatform, alice: httpx.Client, service: httpx.Client
) -> None:
    asset = platform.asset("p1", "svc-1", jsonMetadata={"keep": 1, "drop": 2})
    label = platform.submit(alice, "p1", asset["id"], GOOD)
    base = f"/api/v1/projects/p1/assets/{asset['id']}"
    issue = service.post(base + "/issues", json={"text": "IBAN wrong", "labelId": label["id"]})
    assert issue.status_code == 201, issue.text
    assert issue.json()["author"] == "executor-plugins"
    assert issue.json()["status"] == "OPEN"
    metadata = {"jsonMetadata": {"accuracy": 0.5, "drop": None}}
    assert service.patch(base, json=metadata).json()["jsonMetadata"] == {"keep": 1, "accuracy": 0.5}
    assert service.post(base + "/send-back-to-queue").json()["status"] == "TODO"
    extra = service.post(base + "/labels", json={"jsonResponse": GOOD})
    assert extra.status_code == 201, extra.text
    assert extra.json()["eventId"] is None  # plugin labels never trigger plugins
    assert extra.json()["author"]["email"] == "executor-plugins"
    after = platform.get_asset("p1", asset["id"])
    assert after["status"] == "TODO"
    assert [i["text"] for i in platform.issues("p1", asset["id"])] == ["IBAN wrong"]

    other = platform.asset("p1", "svc-2")
    response = service.post(
        f"/api/v1/projects/p1/assets/{other['id']}/issues",
        json={"text": "x", "labelId": label["id"]},
    )
    assert label["id"] in error(response, 422, "invalid_issue")
    assert platform.issues("p1", other["id"]) == []
    error(service.patch(base, json={"status": "DONE"}), 422, "validation_error")
    error(service.get("/api/v1/projects/p2/assets/" + asset["id"]), 404, "not_found")


def test_a_call_made_again_with_its_idempotency_key_acts_once(
    platform: RunningPlatform, alice: httpx.Client, service: httpx.Client
) -> None:
    """What a re-run attempt of a plugin meets: its calls carry the first attempt's keys."""
    asset = platform.asset("p1", "idem-1")
    label = platform.submit(alice, "p1", asset["id"], GOOD)
    issues = f"/api/v1/projects/p1/assets/{asset['id']}/issues"
    body = {"text": "IBAN wrong", "labelId": label["id"]}
    key = {"Idempotency-Key": "run-1:1"}

    first = service.post(issues, json=body, headers=key)
    again = service.post(issues, json=body, headers=key)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert [i["id"] for i in platform.issues("p1", asset["id"])] == [first.json()["id"]]
    reused = service.post(issues, json={**body, "text": "other"}, headers=key)
    assert error(reused, 422, "idempotency_key_reused").startswith(
        "this Idempotency-Key was sent before with another method, path or body"
    )
    assert service.post(issues, json=body, headers={"Idempotency-Key": "run-1:2"}).is_success
    admin = platform.admin.post(issues, json=body, headers=key)  # keys are per caller
    assert admin.status_code == 201 and admin.json()["id"] != first.json()["id"]
    assert service.post(issues, json=body).is_success  # no key: acts every time
    assert len(platform.issues("p1", asset["id"])) == 4


def test_events_wait_while_the_executor_is_down(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with start_platform(tmp_path, down, OPERATOR_KEY) as platform:
        platform.project("p-down", JOBS)
        user = platform.user("eve@example.com")
        asset = platform.asset("p-down", "d-1")
        label = platform.submit(user, "p-down", asset["id"], GOOD)
        deadline = time.monotonic() + 20
        while (event := platform.event("p-down", label["eventId"]))["attempts"] < 2:
            assert time.monotonic() < deadline, event
            time.sleep(0.1)
        assert event["status"] == "pending"
        assert "ConnectError" in event["lastError"]
        assert platform.get_asset("p-down", asset["id"])["status"] == "LABELED"
