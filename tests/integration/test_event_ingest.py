"""Ingest accepts only what can be delivered (issue 13, items 1a and 10), on a real server:
text that is not Unicode, nesting past EXECUTOR_MAX_EVENT_DEPTH and label events without
their label or asset are refused with 422 naming the path, and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from executor.store.tables import Event, Invocation
from tests.conftest import RunningServer, ServerFactory

ACTIVE = "ingest-active"  # a plugin runs here: a refused event must queue nothing
QUIET = "ingest-quiet"  # nothing runs here: accepted events are stored, nothing else
MAX_DEPTH = 100  # the default EXECUTOR_MAX_EVENT_DEPTH


@pytest.fixture(scope="module")
def ingest(server: RunningServer) -> RunningServer:
    server.push("counter")
    server.activate("counter", ACTIVE)
    return server


def stored(server: RunningServer) -> tuple[int, int]:
    """How many events and invocations the store holds."""
    with server.service.db.session() as session:
        events = session.scalar(select(func.count()).select_from(Event))
        invocations = session.scalar(select(func.count()).select_from(Invocation))
    return int(events or 0), int(invocations or 0)


def post_raw(server: RunningServer, body: bytes) -> httpx.Response:
    return server.api.post("/v1/events", content=body, headers={"Content-Type": "application/json"})


def event_body(label: bytes, project: str = ACTIVE, asset: bytes = b'"a"') -> bytes:
    return b'{"type": "onSubmit", "project_id": "%s", "asset_id": %s, "label": %s}' % (
        project.encode(),
        asset,
        label,
    )


def nested_label(levels: int) -> bytes:
    """A label that makes the event body ``levels`` deep (the body is level 1)."""
    opened = levels - 2
    return b'{"a":' * opened + b"{}" + b"}" * opened


def refused(server: RunningServer, body: bytes, code: str) -> dict[str, Any]:
    before = stored(server)
    response = post_raw(server, body)
    assert response.status_code == 422, response.text
    answer = dict(response.json())
    assert answer["code"] == code
    assert stored(server) == before
    return answer


@pytest.mark.parametrize(
    ("label", "asset", "field", "problem"),
    [
        (
            b'{"jsonResponse": {"JOB": {"text": "broken \\udcff emoji"}}}',
            b'"a"',
            "label.jsonResponse.JOB.text",
            "the string holds \\udcff, a lone surrogate (not Unicode text)",
        ),
        (
            b'{"jsonResponse": {"JOB\\ud83d": {"text": "x"}}}',
            b'"a"',
            "label.jsonResponse.JOB\\ud83d",
            "the key holds \\ud83d, a lone surrogate (not Unicode text)",
        ),
        (
            b'{"boxes": ["fine", "caf\xe9"]}',
            b'"a"',
            "label.boxes.1",
            "the string holds byte 0xe9, which is not UTF-8",
        ),
        (b"{}", b'"asset-\\udcff"', "asset_id", "the string holds \\udcff"),
    ],
)
def test_text_no_plugin_could_get_is_422_naming_its_path_and_stores_nothing(
    ingest: RunningServer, label: bytes, asset: bytes, field: str, problem: str
) -> None:
    answer = refused(ingest, event_body(label, asset=asset), "invalid_unicode")
    assert answer["field"] == field
    assert answer["message"].startswith(f"{field}: {problem}")
    assert "send text as UTF-8" in answer["message"]


def test_a_surrogate_pair_is_one_character_and_is_accepted(ingest: RunningServer) -> None:
    response = post_raw(ingest, event_body(b'{"text": "\\ud83d\\ude00 ok"}', project=QUIET))
    assert response.status_code == 202, response.text
    with ingest.service.db.session() as session:
        event = session.get(Event, response.json()["event_id"])
        assert event is not None and event.label == {"text": "\N{GRINNING FACE} ok"}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 989, 100_000])
def test_an_event_nested_past_the_limit_is_422_naming_where(
    ingest: RunningServer, levels: int
) -> None:
    answer = refused(ingest, event_body(nested_label(levels)), "event_too_deep")
    assert answer["field"] == "label" + ".a" * (MAX_DEPTH - 1)
    assert answer["maximum"] == MAX_DEPTH
    assert answer["message"] == (
        f"{answer['field']}: objects and arrays nest deeper than {MAX_DEPTH} levels here "
        "(the body is level 1): send a flatter event"
    )


def test_an_event_exactly_at_the_depth_limit_is_accepted(ingest: RunningServer) -> None:
    response = post_raw(ingest, event_body(nested_label(MAX_DEPTH), project=QUIET))
    assert response.status_code == 202, response.text


def test_the_depth_limit_is_the_setting(server_factory: ServerFactory) -> None:
    shallow: RunningServer = server_factory(max_event_depth=3)
    answer = refused(shallow, event_body(b'{"boxes": [{}]}'), "event_too_deep")
    assert (answer["field"], answer["maximum"]) == ("label.boxes.0", 3)
    assert post_raw(shallow, event_body(b'{"boxes": []}')).status_code == 202


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "onSubmit", "asset_id": "a"}, "body.label"),
        ({"type": "onSubmit", "label": {}}, "body.asset_id"),
        ({"type": "onReview", "asset_id": "a", "label": None}, "body.label"),
        ({"type": "onReview", "asset_id": None, "label": {"id": "l1"}}, "body.asset_id"),
    ],
)
def test_label_events_without_label_or_asset_are_422_naming_the_field(
    ingest: RunningServer, event: dict[str, Any], field: str
) -> None:
    before = stored(ingest)
    response = ingest.api.post("/v1/events", json={"project_id": ACTIVE, **event})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["code"] == "invalid_request"
    assert [e["field"] for e in answer["errors"]] == [field]
    assert answer["message"].startswith(
        f"{field}: Field required: {event['type']} events hand it to the plugin's handler"
    )
    assert stored(ingest) == before


def test_other_events_need_no_label_or_asset(ingest: RunningServer) -> None:
    response = ingest.api.post(
        "/v1/events",
        json={"type": "asset.issue.created", "project_id": QUIET, "payload": {"issue": "i"}},
    )
    assert response.status_code == 202, response.text
