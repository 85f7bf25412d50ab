"""plugin_runtime.testing: a plugin's handler called in-process with recording clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_runtime.api import ApiError
from plugin_runtime.testing import ApiCall, Call, PluginHarness, RecordingApi, RecordingKili

MAIN = """
import asyncio
from plugin_runtime import PluginCore
from .rules import verdict
from helpers import shout


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        labels = self.kili.labels(project_id=self.project_id, asset_id=asset_id)
        self.logger.info("%s: %s", asset_id, verdict(labels))
        print(shout("printed"))
        asset = self.api.get(f"/assets/{asset_id}")
        self.api.post(f"assets/{asset_id}/issues", json={"text": asset["status"]})

    async def on_event(self, payload):
        await asyncio.sleep(0)
        self.logger.warning("payload %s", payload)
"""


@pytest.fixture
def harness(tmp_path: Path) -> PluginHarness:
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN)
    (folder / "rules.py").write_text("def verdict(labels):\n    return f'{len(labels)} labels'\n")
    (folder / "helpers.py").write_text("def shout(text):\n    return text.upper()\n")
    (folder / "event.json").write_text('{"type": "onSubmit", "asset_id": "a1", "label": {}}')
    return PluginHarness(folder, project_id="p1")


def test_calls_logs_and_printed_text_are_recorded(harness: PluginHarness) -> None:
    kili = RecordingKili(returns={"labels": lambda **kwargs: [kwargs["asset_id"]] * 2})
    api = RecordingApi(returns={("get", "assets/a1"): {"status": "LABELED"}})
    run = harness.run_event("event.json", kili=kili, api=api)
    assert kili.calls == [Call("labels", (), {"project_id": "p1", "asset_id": "a1"})]
    assert api.calls == [
        ApiCall("GET", "assets/a1", None, None),
        ApiCall("POST", "assets/a1/issues", {"text": "LABELED"}, None),
    ]
    assert run.messages("INFO") == ["a1: 2 labels"]
    assert run.stdout == "PRINTED\n"
    assert run.handler.project_id == "p1" and run.handler.kili is kili


def test_a_configured_exception_is_raised_into_the_handler(harness: PluginHarness) -> None:
    failure = ApiError("GET assets/a1: 503", method="GET", path="assets/a1", status=503, body="")
    api = RecordingApi(returns={("GET", "/assets/a1"): failure})
    with pytest.raises(ApiError, match="503"):
        harness.run_event("event.json", kili=RecordingKili(returns={"labels": []}), api=api)


def test_async_handlers_and_generic_events(harness: PluginHarness) -> None:
    run = harness.run_event({"type": "asset.issue.created", "payload": {"n": 1}})
    assert run.logs[0].level == "WARNING" and run.messages() == ["payload {'n': 1}"]
    assert run.kili.calls == []


def test_an_event_without_a_handler_or_malformed_says_so(harness: PluginHarness) -> None:
    with pytest.raises(LookupError, match=r"no on_review\(\): event onReview would be ignored"):
        harness.run_event({"type": "onReview", "asset_id": "a1", "label": {}})
    with pytest.raises(ValueError, match=r"the event: field event\.label must be dict, not list"):
        harness.run_event({"type": "onSubmit", "label": []})
    with pytest.raises(ValueError, match=r"missing\.json as an event"):
        harness.run_event("missing.json")


def test_harnesses_of_two_folders_load_their_own_plugin(
    harness: PluginHarness, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.py").write_text(
        "class PluginHandler:\n    def on_submit(self, label, asset_id):\n"
        "        self.logger.info('other')\n"
    )
    assert PluginHarness(other).run_event("../plugin/event.json").messages() == ["other"]
    assert harness.handler_class is not PluginHarness(other).handler_class
    with pytest.raises(FileNotFoundError, match="no plugin here"):
        PluginHarness(tmp_path)
