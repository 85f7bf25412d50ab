"""Deleting a plugin on a real server: its runs and their logs stay readable and audited
until retention purges them, and its name is free for a new plugin whose runs are told
apart from the old ones (``plugin_deleted_at``; ``runs NAME`` shows them in two tables)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import docker
import pytest
from sqlalchemy import select, update

from executor.store.tables import Invocation, LogRecord, PluginVersion, utcnow
from tests.conftest import RunningServer
from tests.e2e.test_cli import cli

NAME = "doomed"
PROJECT = "delete-project"


@pytest.fixture
def removed_images(server: RunningServer) -> Iterator[list[str]]:
    """Image tags of deleted versions: the server's teardown only knows those it still has."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            server.docker_client.images.remove(tag, force=True)


def image_tags(server: RunningServer) -> list[str]:
    with server.service.db.session() as session:
        query = select(PluginVersion.image_tag).where(PluginVersion.image_tag.is_not(None))
        return [str(tag) for tag in session.scalars(query)]


def backdate(server: RunningServer, run_id: str, days: float) -> None:
    """Make one run and its log records ``days`` old."""
    then = utcnow() - timedelta(days=days)
    with server.service.db.session() as session:
        session.execute(update(Invocation).where(Invocation.id == run_id).values(finished_at=then))
        session.execute(update(LogRecord).where(LogRecord.run_id == run_id).values(created_at=then))


def run_of(server: RunningServer, run_id: str) -> dict[str, Any]:
    response = server.api.get(f"/v1/invocations/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_deleted_plugins_runs_and_logs_stay_until_retention_and_its_name_is_reusable(
    server: RunningServer, removed_images: list[str]
) -> None:
    server.push("counter", name=NAME)
    server.activate(NAME, PROJECT)
    old = server.run_event(type="onSubmit", project_id=PROJECT, asset_id="asset-old", label={})
    assert old["status"] == "succeeded"
    removed_images += image_tags(server)

    assert server.api.delete(f"/v1/plugins/{NAME}").status_code == 204

    assert server.api.get(f"/v1/plugins/{NAME}").status_code == 404
    kept = run_of(server, old["id"])
    assert kept["plugin_deleted_at"] is not None
    assert {k: v for k, v in kept.items() if k != "plugin_deleted_at"} == {
        k: v for k, v in old.items() if k != "plugin_deleted_at"
    }
    ran = [r["content"] for r in server.logs(run_id=old["id"]) if r["log_type"] != "SYSTEM"]
    assert ran == ["ran asset-old"]
    audit = server.api.get("/v1/audit").json()
    assert {"action": "plugin.delete", "target": NAME}.items() <= audit[0].items()
    replay = server.api.post(f"/v1/invocations/{old['id']}/replay")
    assert replay.status_code == 409
    assert replay.json()["message"] == (
        f"invocation {old['id']} ran plugin '{NAME}', which was deleted: it cannot run again; "
        "post the event again to run the plugin that has the name now"
    )

    # The name is free: a new plugin (another one: it reviews) starts again at version 1.
    build = server.push("folder_relative", name=NAME)
    assert build["version"] == 1
    server.activate(NAME, PROJECT)
    new = server.run_event(type="onReview", project_id=PROJECT, asset_id="asset-new", label={})
    assert (new["status"], new["version"], new["plugin_deleted_at"]) == ("succeeded", 1, None)
    listed = server.api.get("/v1/invocations", params={"plugin_name": NAME}).json()
    assert [(r["id"], r["plugin_deleted_at"] is None) for r in listed] == [
        (new["id"], True),
        (old["id"], False),
    ]
    assert server.api.post(f"/v1/invocations/{old['id']}/replay").status_code == 409
    tables = cli(server, "runs", NAME).stdout
    current, _, deleted = tables.partition(f"Runs of deleted plugins named {NAME}")
    assert new["id"] in current and old["id"] not in current
    assert old["id"] in deleted and new["id"] not in deleted

    # Retention purges the old run like any other once it is old enough.
    backdate(server, old["id"], days=server.settings.retention.log_retention_days + 1)
    report = server.service.retention.purge()
    assert (report.invocations, report.log_records) == (1, 2)  # its line and the SYSTEM one
    assert server.api.get(f"/v1/invocations/{old['id']}").status_code == 404
    assert server.logs(run_id=old["id"]) == []
    assert run_of(server, new["id"])["status"] == "succeeded"
    assert [r["content"] for r in server.logs(run_id=new["id"])] != []
