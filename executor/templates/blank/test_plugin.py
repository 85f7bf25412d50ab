"""Unit tests of the plugin, in-process: `pytest` in this folder (see docs/authoring.md).

`plugin-executor run . --event events/onSubmit.json` runs the same code in the sandbox.
"""

from pathlib import Path

from plugin_runtime.testing import PluginHarness

HARNESS = PluginHarness(Path(__file__).parent)


def test_a_submitted_label_is_logged() -> None:
    run = HARNESS.run_event("events/onSubmit.json")
    assert run.messages("INFO") == ["label label-001 submitted on asset asset-001"]
    assert run.kili.calls == [] and run.api.calls == []


def test_a_review_is_logged() -> None:
    run = HARNESS.run_event(
        {"type": "onReview", "asset_id": "asset-002", "label": {"id": "label-009"}}
    )
    assert run.messages() == ["label label-009 reviewed on asset asset-002"]
