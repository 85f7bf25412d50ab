"""Dispatch on a real executor: limits, arrival order, retries, dead, replay, caps, metrics."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, ServerFactory


@pytest.fixture(scope="module")
def serial(server_factory: ServerFactory) -> RunningServer:
    """An executor allowing one run per plugin, quick retries."""
    return server_factory(
        max_runs_per_plugin=1,
        max_concurrent_runs=4,
        retry_base_s=0.2,
        retry_max_s=0.5,
        retry_max_attempts=3,
    )


def intervals(server: RunningServer, plugin: str) -> list[tuple[str, datetime, datetime]]:
    records = server.logs(plugin_name=plugin)
    starts = {r["run_id"]: r for r in records if r["content"].startswith("start")}
    ends = {r["run_id"]: r for r in records if r["content"].startswith("end")}
    return sorted(
        (
            starts[run]["content"].split()[1],
            datetime.fromisoformat(starts[run]["created_at"]),
            datetime.fromisoformat(ends[run]["created_at"]),
        )
        for run in starts
    )


def test_per_plugin_concurrency_of_one_is_never_exceeded_and_order_is_kept(
    serial: RunningServer,
) -> None:
    serial.push("interval")
    serial.activate("interval", "limits")
    ids = [
        serial.post_event(
            type="onSubmit", project_id="limits", asset_id=f"a{i}", label={"sleep": 0.5}
        )["invocations"][0]
        for i in range(4)
    ]
    runs = [serial.wait_run(i) for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 4
    spans = sorted(intervals(serial, "interval"), key=lambda span: span[1])
    assert [asset for asset, _, _ in spans] == ["a0", "a1", "a2", "a3"]  # arrival order
    for (_, _, previous_end), (_, next_start, _) in itertools.pairwise(spans):
        assert next_start >= previous_end, spans


def test_plugin_failures_are_retried_only_as_the_activation_allows_then_dead(
    serial: RunningServer,
) -> None:
    serial.push("raising")
    response = serial.api.put("/v1/projects/retries/plugins/raising", json={"max_retries": 2})
    assert response.json()["max_retries"] == 2
    run = serial.run_event(type="onSubmit", project_id="retries", asset_id="a", label={})
    assert run["status"] == "dead" and run["attempt"] == 3
    assert run["error"] == "gave up after 3 attempts: failed: plugin exited with code 1"
    assert [a["reason"] for a in run["attempts"]] == ["failed: plugin exited with code 1"] * 3
    assert [a["kind"] for a in run["attempts"]] == ["plugin"] * 3
    system = [r["content"] for r in serial.logs(run_id=run["id"]) if r["log_type"] == "SYSTEM"]
    assert system[0].startswith("failed: plugin exited with code 1; retrying in ")
    assert system[1] == "attempt 2 (previous attempt: failed: plugin exited with code 1)"
    # Without max_retries, a plugin failure is final at once.
    serial.activate("raising", "no-retries")
    once = serial.run_event(type="onSubmit", project_id="no-retries", asset_id="a", label={})
    assert once["status"] == "failed" and once["attempt"] == 1 and once["attempts"] == []


def test_a_version_whose_image_was_removed_ends_crashed_at_once(serial: RunningServer) -> None:
    """Trying again cannot bring a removed image back: not retried (an outage would be)."""
    serial.push("counter", name="vanishing")
    serial.activate("vanishing", "infra")
    version = serial.api.get("/v1/plugins/vanishing").json()["versions"][0]
    serial.docker_client.images.remove(version["image_id"], force=True, noprune=True)
    run = serial.run_event(type="onSubmit", project_id="infra", asset_id="a", label={})
    assert run["status"] == "crashed" and run["attempt"] == 1
    assert run["error"].startswith("image plugin-executor/p-")
    assert run["error"].endswith(" is missing: rebuild the plugin version")
    assert [(a["attempt"], a["reason"]) for a in run["attempts"]] == [(1, run["error"])]
    assert [r["content"] for r in serial.logs(run_id=run["id"])] == [run["error"]]


def test_replay_runs_a_finished_invocation_again_linked_to_it(serial: RunningServer) -> None:
    serial.push("counter")
    serial.activate("counter", "replays")
    first = serial.run_event(type="onSubmit", project_id="replays", asset_id="r1", label={})
    response = serial.api.post(f"/v1/invocations/{first['id']}/replay")
    assert response.status_code == 202
    again = serial.wait_run(response.json()["id"])
    assert again["replay_of"] == first["id"] and again["id"] != first["id"]
    assert again["status"] == "succeeded" and again["event_id"] == first["event_id"]
    ran = [r["content"] for r in serial.logs(run_id=again["id"]) if r["log_type"] != "SYSTEM"]
    assert ran == ["ran r1"]


def test_replaying_an_unfinished_invocation_is_409(serial: RunningServer) -> None:
    serial.push("interval", name="slow")
    serial.activate("slow", "replay-busy")
    accepted = serial.post_event(
        type="onSubmit", project_id="replay-busy", asset_id="b", label={"sleep": 2}
    )
    response = serial.api.post(f"/v1/invocations/{accepted['invocations'][0]}/replay")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "only a finished invocation can be replayed" in response.json()["message"]
    serial.wait_run(accepted["invocations"][0])


def test_an_event_over_the_size_cap_is_413_and_stores_nothing(serial: RunningServer) -> None:
    before = serial.api.get("/v1/invocations", params={"project_id": "big"}).json()
    response = serial.api.post(
        "/v1/events",
        json={"type": "onSubmit", "project_id": "big", "label": {"x": "y" * 2_000_000}},
    )
    assert response.status_code == 413
    assert response.json() == {
        "code": "request_too_large",
        "message": "the request body is over 1048576 bytes: send a smaller body",
    }
    assert serial.api.get("/v1/invocations", params={"project_id": "big"}).json() == before


def test_a_burst_of_1000_events_is_accepted_with_none_lost(server_factory: ServerFactory) -> None:
    # One run at a time: the test checks what was accepted and stored, not execution; at
    # teardown the queue is simply left (no drain wait).
    burst = server_factory(max_concurrent_runs=1, drain_timeout_s=0)
    burst.push("counter", name="burst")
    burst.activate("burst", "burst")

    def post(i: int) -> tuple[int, dict[str, Any]]:
        response = burst.api.post(
            "/v1/events",
            json={"type": "onSubmit", "project_id": "burst", "asset_id": f"b{i}", "label": {}},
        )
        return response.status_code, response.json()

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(1000)))
    elapsed = time.monotonic() - started
    assert [status for status, _ in results] == [202] * 1000
    invocation_ids = {body["invocations"][0] for _, body in results}
    assert len(invocation_ids) == 1000 and len({b["event_id"] for _, b in results}) == 1000
    stored: set[str] = set()
    for skip in range(0, 1000, 500):
        page = burst.api.get(
            "/v1/invocations", params={"project_id": "burst", "limit": 500, "skip": skip}
        ).json()
        stored |= {r["id"] for r in page}
    assert stored == invocation_ids
    print(f"burst: 1000 events accepted in {elapsed:.2f} s")


def metric_values(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the server's /metrics, keyed by name and sorted labels."""
    text = server.api.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_events_runs_and_builds_this_test_caused(
    server_factory: ServerFactory,
) -> None:
    metered = server_factory()  # its own process registry: no other test's counts
    metered.push("counter", name="metered")
    metered.activate("metered", "metrics")
    runs = [
        metered.post_event(type="onSubmit", project_id="metrics", asset_id=f"m{i}", label={})
        for i in range(2)
    ]
    metered.post_event(type="onSubmit", project_id="nobody-listens", asset_id="x", label={})
    for accepted in runs:
        assert metered.wait_run(accepted["invocations"][0])["status"] == "succeeded"
    values = metric_values(metered)
    assert values[("executor_events_received_total", ())] == 3
    assert values[("executor_invocations_finished_total", (("status", "succeeded"),))] == 2
    assert values[("executor_invocations", (("status", "succeeded"),))] == 2
    assert values[("executor_builds_total", (("status", "ACTIVE"),))] == 1
    assert values[("executor_run_duration_seconds_count", ())] == 2
    assert values[("executor_start_latency_seconds_count", ())] == 2
