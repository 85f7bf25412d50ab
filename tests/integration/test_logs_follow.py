"""Live follow over Server-Sent Events on a real server running real plugin containers:
lines arrive while the plugin runs, a dropped connection resumes without gaps or
duplicates, writes by other processes are picked up, build logs stream while building."""

from __future__ import annotations

import time
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from executor.cli.client import ServerEvent, parse_events
from executor.store import logs as log_store
from tests.conftest import PLUGINS, RunningServer


def events(
    server: RunningServer,
    path: str,
    params: dict[str, Any],
    last_event_id: str | None = None,
) -> Generator[ServerEvent, None, None]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with server.api.stream("GET", path, params=params, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield from parse_events(response)


def test_follow_receives_lines_while_the_run_goes_on_and_resumes_after_a_drop(
    server: RunningServer,
) -> None:
    server.push("ticker")
    server.activate("ticker", "follow-proj")
    (run_id,) = server.post_event(
        type="onSubmit", project_id="follow-proj", asset_id="a-1", label={}
    )["invocations"]
    received: list[ServerEvent] = []
    stream = events(server, "/v1/logs/stream", {"run_id": run_id})
    for event in stream:
        assert event.event == "message"
        received.append(event)
        if len(received) == 1:
            # The first line is here while the plugin is still sleeping between ticks.
            assert "tick 1 of 4 for a-1" in event.data["content"], event.data
            now = server.api.get(f"/v1/invocations/{run_id}").json()
            assert now["status"] == "running", now
        if len(received) == 2:
            break
    stream.close()  # the connection drops mid-run
    ended = False
    for event in events(server, "/v1/logs/stream", {"run_id": run_id}, received[-1].id):
        if event.event == "end":
            ended = True
            break
        received.append(event)
    assert ended
    assert server.wait_run(run_id)["status"] == "succeeded"
    stored = server.logs(run_id=run_id)
    assert [e.data["id"] for e in received] == [r["id"] for r in stored]
    assert [int(e.id or 0) for e in received] == [r["id"] for r in stored]
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
    assert [e.data["content"] for e in received][-2] == "ticker done"
    assert received[-1].data["content"].startswith("run ended succeeded in ")
    assert sum("of 4 for a-1" in e.data["content"] for e in received) == 4


def test_follow_true_on_the_query_and_writes_by_another_process(server: RunningServer) -> None:
    # Records written straight into the store (as another executor process would) wake
    # no notifier here: the bounded poll picks them up.
    stream = events(
        server, "/v1/logs", {"plugin_name": "elsewhere", "follow": "true", "limit": 100}
    )
    time.sleep(0.3)
    with server.service.db.session() as session:
        log_store.add_records(
            session,
            [
                {
                    "created_at": datetime.now(UTC),
                    "plugin_name": "elsewhere",
                    "project_id": "p",
                    "run_id": "run-elsewhere",
                    "log_type": "INFO",
                    "content": "written by another process",
                    "stream": "stdout",
                    "seq": 1,
                }
            ],
        )
    first = next(stream)  # only the bounded poll can deliver it (pytest-timeout bounds it)
    stream.close()
    assert first.data["content"] == "written by another process"


def test_build_log_streams_while_the_version_builds(server: RunningServer) -> None:
    from executor.intake.upload import pack_directory

    data = pack_directory(PLUGINS / "runtime_relative")
    created = server.api.post(
        "/v1/plugins", data={"name": "streamed"}, files={"file": ("p.tar.gz", data)}
    )
    assert created.status_code == 202, created.text
    path = "/v1/plugins/streamed/versions/1/build-log/stream"
    text, offsets, end = "", [], None
    for event in events(server, path, {}):
        if event.event == "build":
            text += event.data["text"]
            offsets.append(int(event.id or 0))
        elif event.event == "end":
            end = event.data
            break
    assert end == {"status": "ACTIVE", "error": None}
    final = server.api.get("/v1/plugins/streamed/versions/1/build-log").json()
    assert text == final["log"] and text
    assert offsets == sorted(offsets) and offsets[-1] == len(text)
    # Resuming at the end sends nothing more than the end.
    resumed = list(events(server, path, {}, str(len(text))))
    assert [e.event for e in resumed] == ["end"]
    missing = server.api.get("/v1/plugins/streamed/versions/9/build-log/stream")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
