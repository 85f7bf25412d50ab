"""Versions on a real executor: pins, rollback, and the image GC keeping what is in use."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import uvicorn

from tests.conftest import (
    RunningServer,
    ServerFactory,
    make_settings,
    start_server,
    stop_server,
)

MAIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print({!r})\n"


@pytest.fixture(scope="module")
def keep2(server_factory: ServerFactory) -> RunningServer:
    return server_factory(keep_versions=2)


def push_version(server: RunningServer, folder: Path, says: str) -> int:
    folder.mkdir(exist_ok=True)
    (folder / "main.py").write_text(MAIN.format(says))
    return int(server.push(folder)["version"])


def said(server: RunningServer, project: str) -> tuple[int, str]:
    run = server.run_event(type="onSubmit", project_id=project, asset_id="a", label={})
    assert run["status"] == "succeeded", (
        run["error"],
        server.logs(run_id=run["id"])[-1]["content"],
    )
    (record,) = [r for r in server.logs(run_id=run["id"]) if r["log_type"] != "SYSTEM"]
    return run["version"], record["content"]


def versions(server: RunningServer, name: str) -> dict[int, dict[str, Any]]:
    plugin = server.api.get(f"/v1/plugins/{name}").json()
    return {v["version"]: v for v in plugin["versions"]}


def removed(server: RunningServer, name: str, expected: list[int]) -> list[int]:
    """Version numbers whose image is removed, once they equal ``expected`` (the GC runs
    right after a build turned ACTIVE) or after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        found = [n for n, v in versions(server, name).items() if v["image_removed"]]
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def image_present(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def test_pin_rollback_and_gc(keep2: RunningServer, tmp_path: Path) -> None:
    folder = tmp_path / "rb"
    for n in (1, 2):
        assert push_version(keep2, folder, f"v{n}") == n
    follow = keep2.activate("rb", "follow")
    pinned = keep2.api.put("/v1/projects/pinned/plugins/rb", json={"version": 1})
    assert pinned.status_code == 200 and pinned.json()["pinned_version"] == 1
    assert pinned.json()["runs_version"] == 1
    assert follow["pinned_version"] is None and follow["runs_version"] == 2
    assert push_version(keep2, folder, "v3") == 3  # v1 is out of the newest two, but pinned
    assert removed(keep2, "rb", []) == []
    assert said(keep2, "follow") == (3, "v3")
    assert said(keep2, "pinned") == (1, "v1")

    rolled = keep2.api.post("/v1/plugins/rb/rollback")
    assert rolled.json() == {
        "plugin": "rb",
        "current_version": 2,
        "previous_version": 3,
        "recent_runs": 0,
        "recent_failures": 0,
        "warning": None,
    }
    assert said(keep2, "follow") == (2, "v2")  # the next event runs the rolled-back version
    assert said(keep2, "pinned") == (1, "v1")  # a pin is not moved by a rollback
    assert keep2.api.get("/v1/plugins/rb").json()["current_version"] == 2
    assert keep2.api.post("/v1/plugins/rb/rollback").json()["current_version"] == 1
    refused = keep2.api.post("/v1/plugins/rb/rollback")
    assert refused.status_code == 409
    assert refused.json() == {
        "code": "conflict",
        "message": "plugin 'rb' has no ACTIVE version before v1 to roll back to: upload a "
        "fixed version instead",
    }
    assert keep2.api.get("/v1/plugins/rb").json()["current_version"] == 1  # unchanged

    # v4 becomes current; GC keeps v4, v3 (newest two) and v1 (pinned); removes v2.
    assert push_version(keep2, folder, "v4") == 4
    assert said(keep2, "follow") == (4, "v4")
    assert removed(keep2, "rb", [2]) == [2]
    kept = versions(keep2, "rb")
    assert keep2.api.get("/v1/plugins/rb").json()["current_version"] == 4
    assert not image_present(keep2.docker_client, tag_of(keep2, "rb", 2))
    assert image_present(keep2.docker_client, tag_of(keep2, "rb", 1))
    assert kept[4]["current"] is True and kept[1]["current"] is False
    assert said(keep2, "pinned") == (1, "v1")

    # A removed version cannot be pinned; unpinning lets the GC take v1 at the next build.
    refused_pin = keep2.api.put("/v1/projects/pinned/plugins/rb", json={"version": 2})
    assert refused_pin.status_code == 409
    assert refused_pin.json()["message"] == (
        "plugin 'rb' v2 is ACTIVE (image removed): only an ACTIVE version can be pinned"
    )
    missing_pin = keep2.api.put("/v1/projects/pinned/plugins/rb", json={"version": 9})
    assert missing_pin.status_code == 404
    keep2.activate("rb", "pinned")
    assert push_version(keep2, folder, "v5") == 5
    assert removed(keep2, "rb", [1, 2, 3]) == [1, 2, 3]
    assert said(keep2, "pinned") == (5, "v5")
    assert not image_present(keep2.docker_client, tag_of(keep2, "rb", 1))


def tag_of(server: RunningServer, name: str, number: int) -> str:
    from sqlalchemy import select

    from executor.store.tables import Plugin

    with server.service.db.session() as session:
        plugin_id = session.scalar(select(Plugin.id).where(Plugin.name == name))
    return f"plugin-executor/p-{plugin_id}:v{number}"


def test_gc_never_removes_a_queued_runs_image(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    runtime_image: str,
    tmp_path: Path,
) -> None:
    # Two servers on one data folder, wired as `serve --no-dispatch` and `serve` are: the
    # first queues the run and builds past it; the second runs it.
    data_dir = tmp_path_factory.mktemp("executor")
    api_only = start_server(make_settings(data_dir, keep_versions=2, dispatch=False), docker_client)
    try:
        first = api_only[0]
        folder = tmp_path / "busy"
        push_version(first, folder, "b1")
        first.activate("busy", "busy")
        queued = first.post_event(type="onSubmit", project_id="busy", asset_id="q", label={})
        for n in (2, 3, 4):
            push_version(first, folder, f"b{n}")
        assert removed(first, "busy", [2]) == [2]  # v1 is kept: a queued run needs it
        run = first.api.get(f"/v1/invocations/{queued['invocations'][0]}").json()
        assert run["status"] == "queued" and run["version"] == 1
    finally:
        halt(*api_only)
    dispatching = start_server(make_settings(data_dir, keep_versions=2), docker_client)
    try:
        run = dispatching[0].wait_run(queued["invocations"][0])
        assert run["status"] == "succeeded" and run["version"] == 1
    finally:
        stop_server(*dispatching)  # removes the images of every version


def halt(running: RunningServer, server: uvicorn.Server, thread: threading.Thread) -> None:
    """Stop a server and keep its images (another server on its data folder runs them)."""
    running.api.close()
    server.should_exit = True
    thread.join(60)
    assert not thread.is_alive(), "the first executor did not stop"
