"""The log query API on a real server and SQLite store: filters, ordering, cursor paging
under concurrent writes, Kili's offset paging, and every refused query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from executor.store import logs as log_store
from executor.store.tables import LogRecord
from tests.conftest import RunningServer

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "SYSTEM"]


def record(n: int, **fields: Any) -> dict[str, object]:
    values: dict[str, object] = {
        "created_at": T0 + timedelta(minutes=n),
        "plugin_name": "qa",
        "project_id": "proj-a",
        "run_id": "run-1",
        "log_type": LEVELS[n % len(LEVELS)],
        "content": f"line {n}",
        "asset_id": "asset-1",
        "label_id": None,
        "stream": "stdout",
        "seq": n,
    }
    values.update(fields)
    return values


def insert(server: RunningServer, records: list[dict[str, object]]) -> None:
    with server.service.db.session() as session:
        log_store.add_records(session, records)


def get(server: RunningServer, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    response = server.api.get("/v1/logs", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()), response.headers.get("X-Next-Cursor")


def contents(records: list[dict[str, Any]]) -> list[str]:
    return [r["content"] for r in records]


def count_records(server: RunningServer) -> int:
    with server.service.db.session() as session:
        return session.query(LogRecord).count()


@pytest.fixture(scope="module")
def seeded(server: RunningServer) -> RunningServer:
    """24 lines of plugin qa on proj-a (run-1, run-2), plus other plugins and projects."""
    insert(server, [record(n, run_id="run-1" if n < 12 else "run-2") for n in range(24)])
    insert(
        server,
        [
            record(100, plugin_name="other", content="other plugin line", run_id="run-x"),
            record(101, project_id="proj-b", content="other project line", run_id="run-y"),
            record(102, content="discount 50% off_today", run_id="run-3", log_type="INFO"),
            record(103, content="discount 50 percent", run_id="run-3", log_type="INFO"),
            record(104, content="IBAN Mismatch", run_id="run-3", log_type="INFO"),
        ],
    )
    return server


def test_project_and_plugin_filter_oldest_first_like_kili(seeded: RunningServer) -> None:
    found, _ = get(seeded, project_id="proj-a", plugin_name="qa", limit=5)
    assert contents(found) == [f"line {n}" for n in range(5)]
    first = found[0]
    assert first["metadata"] == {
        "asset_id": "asset-1",
        "label_id": None,
        "assetId": "asset-1",
        "labelId": None,
    }
    assert {"id", "created_at", "run_id", "log_type", "stream", "seq"} <= set(first)
    # Kili's get_plugin_logs fields, beside the executor's own
    kili = {k: first[k] for k in ("createdAt", "logType", "pluginName", "projectId", "runId")}
    assert kili == {
        "createdAt": first["created_at"],
        "logType": "DEBUG",
        "pluginName": "qa",
        "projectId": "proj-a",
        "runId": "run-1",
    }
    skipped, _ = get(seeded, project_id="proj-a", plugin_name="qa", limit=3, skip=5)
    assert contents(skipped) == ["line 5", "line 6", "line 7"]
    other, _ = get(seeded, project_id="proj-b")
    assert contents(other) == ["other project line"]


def test_run_level_time_window_and_text_filters(seeded: RunningServer) -> None:
    run2, _ = get(seeded, run_id="run-2")
    assert contents(run2) == [f"line {n}" for n in range(12, 24)]
    errors, _ = get(seeded, run_id="run-1", level="ERROR")
    # ERROR, CRITICAL and the executor's SYSTEM lines; never DEBUG/INFO/WARNING.
    assert [r["log_type"] for r in errors] == ["ERROR", "CRITICAL", "SYSTEM"] * 2
    window, _ = get(
        seeded,
        plugin_name="qa",
        project_id="proj-a",
        start_date=(T0 + timedelta(minutes=3)).isoformat(),
        until=(T0 + timedelta(minutes=6)).isoformat(),
    )
    assert contents(window) == ["line 3", "line 4", "line 5"]  # until is exclusive
    mixed_case, _ = get(seeded, q="iban mismatch")
    assert contents(mixed_case) == ["IBAN Mismatch"]
    literal, _ = get(seeded, q="50%")  # % and _ are text, not LIKE wildcards
    assert contents(literal) == ["discount 50% off_today"]
    underscore, _ = get(seeded, q="f_t")
    assert contents(underscore) == ["discount 50% off_today"]


def test_newest_first_with_cursor(seeded: RunningServer) -> None:
    page, cursor = get(seeded, run_id="run-1", order="desc", limit=4)
    assert contents(page) == ["line 11", "line 10", "line 9", "line 8"]
    rest, _ = get(seeded, run_id="run-1", order="desc", limit=100, cursor=cursor)
    assert contents(rest) == [f"line {n}" for n in range(7, -1, -1)]


def test_cursor_paging_neither_skips_nor_repeats_records_written_between_pages(
    server: RunningServer,
) -> None:
    insert(server, [record(n, run_id="run-paging", content=f"old {n}") for n in range(5)])
    first, cursor = get(server, run_id="run-paging", limit=3)
    assert contents(first) == ["old 0", "old 1", "old 2"] and cursor
    insert(server, [record(n, run_id="run-paging", content=f"new {n}") for n in range(2)])
    second, cursor2 = get(server, run_id="run-paging", limit=3, cursor=cursor)
    assert contents(second) == ["old 3", "old 4", "new 0"]
    third, cursor3 = get(server, run_id="run-paging", limit=3, cursor=cursor2)
    assert contents(third) == ["new 1"]
    empty, cursor4 = get(server, run_id="run-paging", limit=3, cursor=cursor3)
    assert empty == [] and cursor4 == cursor3  # poll again later from the same place
    ids = [r["id"] for r in first + second + third]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        ({"level": "TRACE"}, 422, "invalid_request", "query.level"),
        ({"order": "sideways"}, 422, "invalid_request", "query.order"),
        ({"limit": 0}, 422, "invalid_request", "query.limit"),
        ({"limit": 1001}, 422, "invalid_request", "query.limit"),
        ({"skip": -1}, 422, "invalid_request", "query.skip"),
        ({"start_date": "yesterday"}, 422, "invalid_request", "query.start_date"),
        ({"q": "x" * 201}, 422, "invalid_request", "query.q"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor", "not a cursor this server issued"),
        (
            {"cursor": log_store.encode_cursor(5, "desc")},
            400,
            "invalid_cursor",
            "issued for order=desc, not order=asc",
        ),
        (
            {"start_date": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            400,
            "invalid_query",
            "must be later than start_date",
        ),
    ],
)
def test_refused_queries_say_what_was_wrong_and_change_nothing(
    seeded: RunningServer, params: dict[str, Any], status: int, code: str, message: str
) -> None:
    before = count_records(seeded)
    response = seeded.api.get("/v1/logs", params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert message in body["message"]
    assert "X-Next-Cursor" not in response.headers
    assert count_records(seeded) == before


def test_stream_refuses_a_bad_last_event_id(seeded: RunningServer) -> None:
    response = seeded.api.get(
        "/v1/logs/stream", params={"run_id": "run-1"}, headers={"Last-Event-ID": "abc"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"
    assert "is not a record id" in response.json()["message"]


def test_the_console_is_served_without_a_key_but_its_data_is_not(server: RunningServer) -> None:
    import httpx

    with httpx.Client(base_url=server.url) as anonymous:
        page = anonymous.get("/ui/", follow_redirects=True)
        assert page.status_code == 200 and "Plugin Executor" in page.text
        assert anonymous.get("/ui/app.js").status_code == 200
        assert anonymous.get("/v1/logs").status_code == 401
        assert anonymous.get("/v1/logs/stream").status_code == 401
