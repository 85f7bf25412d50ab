"""A plugin whose handlers come from its own base classes, end to end: upload, default
activation, one event per inherited handler, each run in a real container."""

from __future__ import annotations

from tests.conftest import RunningServer


def test_inherited_handlers_are_activated_by_default_and_run(server: RunningServer) -> None:
    server.push("inherited")
    plugin = server.api.get("/v1/plugins/inherited").json()
    assert plugin["versions"][0]["handlers"] == ["onReview", "onSendBackToQueue", "onSubmit"]

    activation = server.activate("inherited", "mixin-proj")
    assert activation["events"] == ["onReview", "onSendBackToQueue", "onSubmit"]

    submit = server.run_event(
        type="onSubmit", project_id="mixin-proj", asset_id="asset-7", label={}
    )
    back = server.run_event(type="onSendBackToQueue", project_id="mixin-proj", asset_id="asset-8")
    assert (submit["status"], back["status"]) == ("succeeded", "succeeded")
    assert [r["content"] for r in server.logs(run_id=submit["id"]) if r["log_type"] == "INFO"] == [
        "inherited on_submit for asset-7 from mixins"
    ]
    assert [r["content"] for r in server.logs(run_id=back["id"]) if r["log_type"] == "INFO"] == [
        "inherited on_send_back_to_queue for asset-8"
    ]
